# One image with every Scope binary; each compose service runs the one it needs.
# The collector's binary (scope-collector) links neither Arrow nor DataFusion.
FROM rust:1.95-bookworm AS build
# clang + libbpf-dev compile the eBPF connection tracker (ebpf/build.rs); npm installs the
# web UI's JavaScript, which the renderer embeds (renderer/build.rs stops without it).
RUN apt-get update && apt-get install -y --no-install-recommends make perl pkg-config clang libbpf-dev npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cd renderer/ui && npm ci --no-audit --no-fund --loglevel=error
RUN --mount=type=cache,target=/src/target \
    cargo build --profile container --locked \
        --bin scope --bin scope-collector --bin scope-merger --bin scope-renderer \
 && mkdir /out && cp target/container/scope target/container/scope-collector \
        target/container/scope-merger target/container/scope-renderer /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
ENV SCOPE_DATA_DIR=/var/lib/scope
ENTRYPOINT []
