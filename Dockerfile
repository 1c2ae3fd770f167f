# syntax=docker/dockerfile:1.7
#
# The spinegate image: the spinegate binary on distroless, run as uid 10001 with the
# configuration at /etc/spinegate/spinegate.toml (where the Helm chart mounts it).
#
#   DOCKER_BUILDKIT=1 docker build -t spinegate:0.1.0 .
#   docker run --rm -v "$PWD/etc:/etc/spinegate:ro" spinegate:0.1.0 check-config /etc/spinegate/spinegate.toml

# --- build ---------------------------------------------------------------------------------------
# rust-toolchain.toml pins 1.95.0; rustup in this image honours it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directory live in BuildKit caches, so a rebuild after a source change
# recompiles only what changed. The binary is copied out of the cached target directory, which
# the final stage cannot see.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p spinegate --bin spinegate \
    && install -D -m 0755 target/release/spinegate /out/spinegate

# --- runtime -------------------------------------------------------------------------------------
# glibc and libgcc only; no shell, no package manager. Every trust store spinegate uses is
# configured explicitly, so the image's CA bundle is never consulted.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/spinegate /usr/local/bin/spinegate
# Non-root, numeric so that Kubernetes' runAsNonRoot can verify it; the chart runs as the same uid.
USER 10001:10001
# 8443: the clinical TLS listener; 9901: the admin listener (/healthz, /readyz, /metrics).
EXPOSE 8443 9901
ENTRYPOINT ["/usr/local/bin/spinegate"]
CMD ["run", "--config", "/etc/spinegate/spinegate.toml"]
