# syntax=docker/dockerfile:1
# source-apiserver: a multi-stage build. The builder compiles the release binary against
# Debian bookworm's OpenSSL; the runtime is distroless (glibc, libssl3, CA certificates, no
# shell) and runs as the non-root user 65532. SQLite is compiled in (rusqlite "bundled"), and
# so is jemalloc, with the settings in .cargo/config.toml (part of the build context).
#
#   docker build -t source-apiserver:0.1.0 .
ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p apiserver --bin source-apiserver \
 && install -D -m 0755 target/release/source-apiserver /out/source-apiserver

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/source-apiserver /usr/local/bin/source-apiserver
USER 65532:65532
# 8443: the HTTPS API (--listen); 8080: the plain-HTTP artifact listener (--artifact-listen).
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/source-apiserver"]
CMD ["serve", "--data-dir=/data", "--listen=0.0.0.0:8443"]
