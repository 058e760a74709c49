//! Strategies: the random inputs.

use super::*;

#[derive(Clone, Debug)]
pub(crate) enum Pick {
    Key(usize),
    Raw(u64),
}

pub(crate) fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        8 => any::<usize>().prop_map(Pick::Key),
        1 => any::<u64>().prop_map(Pick::Raw),
        1 => select(vec![0u64, 1, u64::MAX, 1 << 53]).prop_map(Pick::Raw),
    ]
}

/// Half the cases from `random`, half from `fitting` (calls by the proxy user that should
/// get past policy), so that refusals and successes are both exercised.
pub(crate) fn biased<T: Clone + Debug + 'static>(
    random: impl Strategy<Value = T> + 'static,
    fitting: Vec<T>,
) -> BoxedStrategy<T> {
    if fitting.is_empty() {
        random.boxed()
    } else {
        prop_oneof![random, select(fitting)].boxed()
    }
}

/// 0 = the proxy service user (owns most keys), 1 = alice (crypto-user), 2 = admin.
pub(crate) fn session() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)]
}

pub(crate) fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// Byte strings: empty, short, medium and long (up to 70 KiB).
pub(crate) fn bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        4 => vec(any::<u8>(), 0..80),
        2 => vec(any::<u8>(), 0..1500),
        1 => (0usize..70_000, any::<u64>()).prop_map(|(n, s)| filler(n, s)),
    ]
    .boxed()
}

pub(crate) fn small_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![Just(Vec::new()), vec(any::<u8>(), 0..300)].boxed()
}

/// Lengths near the ones mechanisms care about (digests, signatures, IVs, moduli).
pub(crate) fn sized_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => bytes(),
        3 => (select(vec![
            0usize, 1, 12, 16, 20, 24, 27, 28, 29, 31, 32, 33, 40, 47, 48, 49, 63, 64, 65, 71,
            72, 96, 104, 132, 139, 255, 256, 257, 296, 383, 384, 512, 520, 552,
        ]), any::<u64>())
            .prop_map(|(n, s)| filler(n, s)),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
pub(crate) enum Input {
    Message(Vec<u8>),
    Digest(Vec<u8>),
}

impl Input {
    pub(crate) fn as_input(&self) -> SignInput<'_> {
        match self {
            Input::Message(m) => SignInput::Message(m),
            Input::Digest(d) => SignInput::Digest(d),
        }
    }
}

pub(crate) fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => bytes().prop_map(Input::Message),
        2 => sized_bytes().prop_map(Input::Digest),
    ]
}

pub(crate) fn encoding() -> impl Strategy<Value = SignatureEncoding> {
    select(vec![SignatureEncoding::Der, SignatureEncoding::Raw])
}

pub(crate) fn aad() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![3 => Just(Vec::new()), 1 => vec(any::<u8>(), 1..100)].boxed()
}

/// Every spec, including generic secrets of any length (valid are 1 to 800).
pub(crate) fn any_spec() -> BoxedStrategy<KeySpec> {
    prop_oneof![
        4 => select(
            KeySpec::SYMMETRIC
                .into_iter()
                .chain(KeySpec::ASYMMETRIC)
                .collect::<Vec<_>>()
        ),
        1 => (1u16..=GENERIC_SECRET_MAX_BYTES).prop_map(|bytes| KeySpec::GenericSecret { bytes }),
        1 => any::<u16>().prop_map(|bytes| KeySpec::GenericSecret { bytes }),
    ]
    .boxed()
}

/// Documented secret specs only.
pub(crate) fn valid_secret_spec() -> BoxedStrategy<KeySpec> {
    prop_oneof![
        2 => select(KeySpec::SYMMETRIC.to_vec()),
        1 => (1u16..=GENERIC_SECRET_MAX_BYTES).prop_map(|bytes| KeySpec::GenericSecret { bytes }),
    ]
    .boxed()
}

pub(crate) fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9-]{1,20}",
        2 => "\\PC{0,140}",
        1 => "[\\x00-\\x1f]{1,3}[a-z]{0,3}",
        2 => "[0-9a-f]{0,130}",
        1 => "[0-9A-F]{2,10}",
        1 => select(vec![
            "ec-p256".to_string(),
            "aes-256".into(),
            "known-aes".into(),
            "alice-ec".into(),
            "x".repeat(127),
            "x".repeat(128),
            String::new(),
        ]),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
pub(crate) enum LabelChoice {
    Fresh,
    Taken,
    Text(String),
}

pub(crate) fn label_choice() -> impl Strategy<Value = LabelChoice> {
    prop_oneof![
        6 => Just(LabelChoice::Fresh),
        1 => Just(LabelChoice::Taken),
        1 => text().prop_map(LabelChoice::Text),
    ]
}

pub(crate) fn attr_value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        3 => any::<bool>().prop_map(AttributeValue::Bool),
        1 => text().prop_map(AttributeValue::Text),
    ]
}

/// Ways to damage a ciphertext or wrapped key.
#[derive(Clone, Debug)]
pub(crate) enum Tamper {
    Truncate(usize),
    Flip(usize, u8),
    Append(Vec<u8>),
    Replace(Vec<u8>),
    Swap(usize, usize),
}

pub(crate) fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        2 => any::<usize>().prop_map(Tamper::Truncate),
        4 => (any::<usize>(), 0u8..8).prop_map(|(p, b)| Tamper::Flip(p, b)),
        1 => vec(any::<u8>(), 1..40).prop_map(Tamper::Append),
        1 => sized_bytes().prop_map(Tamper::Replace),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap(a, b)),
    ]
}

impl Tamper {
    /// The damaged bytes, or `None` if this tamper leaves them as they were.
    pub(crate) fn apply(&self, good: &[u8]) -> Option<Vec<u8>> {
        let mut v = good.to_vec();
        match self {
            Tamper::Truncate(n) => v.truncate(n % good.len().max(1)),
            Tamper::Flip(p, bit) => {
                if v.is_empty() {
                    v.push(1);
                } else {
                    let p = p % v.len();
                    v[p] ^= 1 << bit;
                }
            }
            Tamper::Append(extra) => v.extend_from_slice(extra),
            Tamper::Replace(r) => v = r.clone(),
            Tamper::Swap(a, b) => {
                if !v.is_empty() {
                    let n = v.len();
                    v.swap(a % n, b % n);
                }
            }
        }
        (v != good).then_some(v)
    }
}

/// A random template: mostly settable boolean attributes, sometimes any name (read-only and
/// `trusted` included) with any value.
pub(crate) fn template(
) -> impl Strategy<Value = (LabelChoice, Vec<(AttributeName, AttributeValue)>)> {
    let settable: Vec<AttributeName> = AttributeName::ALL
        .into_iter()
        .filter(|n| {
            !n.is_read_only()
                && !matches!(
                    n,
                    AttributeName::Label | AttributeName::Id | AttributeName::Trusted
                )
        })
        .collect();
    let entry = prop_oneof![
        6 => (select(settable), any::<bool>().prop_map(AttributeValue::Bool)),
        1 => (select(AttributeName::ALL.to_vec()), attr_value()),
    ];
    (label_choice(), vec(entry, 0..4))
}

pub(crate) fn make_template(
    fx: &Fx,
    l: &LabelChoice,
    attrs: &[(AttributeName, AttributeValue)],
    class: KeyClass,
) -> KeyTemplate {
    KeyTemplate {
        label: fx.label_for(l, class),
        attributes: attrs.to_vec(),
    }
}
