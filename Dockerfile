# miracolix-operator image for people who build with Docker: the same image `make image`
# (scripts/image.sh) assembles without a container engine — same files, user, entrypoint, ports
# and labels; docs/image.md says what is in it and why.
# Build: docker build --build-arg GIT_REVISION=$(git rev-parse HEAD) \
#          --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t miracolix-operator:dev .
# The project's build machines and its release workflow use `make image`; this file is not what
# ships, and `operator/tests/image_dockerfile.rs` keeps it equivalent.

# Base images are pinned by digest (the tag says what it is, the digest decides which image it
# is); where each digest comes from is in docs/dependencies-supply-chain.md. A digest changes
# only in a reviewed commit.
# rust:1.89-bookworm, the multi-platform index as docker-library/repo-info records it. Its
# Debian bookworm provides glibc (linked statically) and ca-certificates, as on the build machines.
FROM docker.io/library/rust:1.89-bookworm@sha256:16790a8f2ee07e21ad2d3b2216af070ea4ee41b42b8cca5b40ab5f1e2f19e884 AS build
ARG GIT_REVISION=unknown
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY operator ./operator
COPY e2e ./e2e
COPY validation ./validation
COPY service ./service
COPY gate ./gate
COPY hub ./hub
COPY inbox ./inbox
# Static glibc (the musl target is not available on the build machines; docs/image.md), the image
# profile of Cargo.toml. --target keeps RUSTFLAGS off build scripts and proc macros.
RUN triple="$(uname -m)-unknown-linux-gnu" && \
    RUSTFLAGS="-C target-feature=+crt-static" MIRACOLIX_GIT_REVISION="$(echo "$GIT_REVISION" | cut -c1-12)" \
      cargo build --locked --profile image --target "$triple" -p miracolix-operator --bin miracolix-operator && \
    cp "target/$triple/image/miracolix-operator" /miracolix-operator && \
    mkdir -p /rootfs/home/nonroot /rootfs/tmp && chown 65532:65532 /rootfs/home/nonroot && \
    chmod 0700 /rootfs/home/nonroot && chmod 1777 /rootfs/tmp

# Nothing but the binary and the files in image/rootfs/etc plus the CA bundle: no shell, no libc
# to load, the nonroot user 65532.
FROM scratch
ARG VERSION=0.1.0
ARG GIT_REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
COPY image/rootfs/etc/passwd image/rootfs/etc/group image/rootfs/etc/nsswitch.conf /etc/
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /rootfs/ /
COPY --from=build /miracolix-operator /usr/local/bin/miracolix-operator
LABEL org.opencontainers.image.title="miracolix-operator" \
      org.opencontainers.image.description="Kubernetes operator for the MIRACUM data integration centre (DIZ) stack" \
      org.opencontainers.image.source="https://github.com/miracum/miracolix-operator" \
      org.opencontainers.image.url="https://github.com/miracum/miracolix-operator" \
      org.opencontainers.image.documentation="https://github.com/miracum/miracolix-operator/blob/main/docs/install.md" \
      org.opencontainers.image.vendor="MIRACUM" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# 8080 health probes (/livez, /readyz), 9090 metrics, as manifests/base/deployment.yaml names them.
EXPOSE 8080/tcp 9090/tcp
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/miracolix-operator"]
CMD ["run"]
