# miracolix-operator image: a static binary on distroless, running as non-root.
# Build: docker build -t miracolix-operator:dev .
# (The project's build machines have no Docker engine; this file is exercised by `make e2e-kind`.)

# Base images are pinned by digest (the tag says what it is, the digest decides which image it
# is); where each digest comes from is in docs/dependencies-supply-chain.md. A digest changes
# only in a reviewed commit.
# rust:1.89-bookworm, the multi-platform index as docker-library/repo-info records it.
FROM docker.io/library/rust:1.89-bookworm@sha256:16790a8f2ee07e21ad2d3b2216af070ea4ee41b42b8cca5b40ab5f1e2f19e884 AS build
RUN rustup target add x86_64-unknown-linux-musl && \
    apt-get update && apt-get install -y --no-install-recommends musl-tools && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY operator ./operator
COPY e2e ./e2e
# rustls + ring: no OpenSSL, so the musl build is fully static.
RUN cargo build --locked --release -p miracolix-operator --bin miracolix-operator \
      --target x86_64-unknown-linux-musl && \
    cp target/x86_64-unknown-linux-musl/release/miracolix-operator /miracolix-operator

# distroless static (no libc, no shell), the nonroot user 65532. scripts/sbom.py records this
# line's digest in the image's SBOM.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /miracolix-operator /usr/local/bin/miracolix-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/miracolix-operator"]
CMD ["run"]
