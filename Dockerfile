# miracolix-operator image: a static binary on distroless, running as non-root.
# Build: docker build -t miracolix-operator:dev .
# (The project's build machines have no Docker engine; this file is exercised by `make e2e-kind`.)

FROM docker.io/library/rust:1.89-bookworm AS build
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

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /miracolix-operator /usr/local/bin/miracolix-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/miracolix-operator"]
CMD ["run"]
