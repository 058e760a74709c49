//! Fills a data directory (made by `keyward init`, no node running on it) with N key objects
//! (N/2 EC P-256 pairs of the proxy's service user) in-process, for the backup benchmark
//! (`loadtest/backup.sh`). Usage: `fill_keys DIR N`.

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let n: usize = args.next().expect("N").parse().expect("N is a number");
    let hsm = keyward_hsm::test_util::open_data_dir(&dir);
    let session = hsm.service_session(keyward_hsm::PROXY_USER).unwrap();
    for i in 0..n / 2 {
        let label = format!("bench-{i}");
        hsm.generate_key_pair(
            &session,
            keyward_hsm::KeySpec::EcP256,
            &keyward_hsm::KeyTemplate::labelled(&label)
                .with(keyward_hsm::AttributeName::Sign, true)
                .with(keyward_hsm::AttributeName::Extractable, false),
            &keyward_hsm::KeyTemplate::labelled(&label)
                .with(keyward_hsm::AttributeName::Verify, true),
        )
        .unwrap();
    }
    println!("{} key objects", n / 2 * 2);
}
