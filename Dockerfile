# syntax=docker/dockerfile:1
# Keyward's container image: a build stage (Rust, Debian bookworm) and a runtime stage with
# only the binary, the libraries it links (glibc, libgcc_s, libm, the loader) and a non-root
# user: no shell, no package manager. Kubernetes probes `/healthz`, `/readyz` (admin
# listener) and `/v1/ready` (API) instead of a HEALTHCHECK.
#
# With registry access:  docker build -t keyward .   (or buildah bud -t keyward .)
# Without it (this project's CI): scripts/image lays out the runtime root filesystem from a
#   binary built on the host (scripts/image-rootfs) and builds with
#   `buildah bud --build-context build=DIR`, which stands in for the build stage.
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin keyward \
    && scripts/image-rootfs target/release/keyward /out

FROM scratch
LABEL org.opencontainers.image.title="keyward" \
      org.opencontainers.image.description="TLS proxy whose keys stay in an HSM, and a software HSM cluster" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Keyward"
COPY --from=build /out/rootfs/ /
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/keyward/
USER 65532:65532
WORKDIR /var/lib/keyward
ENV KEYWARD_DATA_DIR=/var/lib/keyward \
    KEYWARD_HSM__DATA_DIR=/var/lib/keyward
EXPOSE 8443 9200 9090
ENTRYPOINT ["/usr/bin/keyward"]
CMD ["serve", "--config", "/etc/keyward/keyward.toml"]
