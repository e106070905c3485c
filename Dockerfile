# Switchyard: one static binary (musl) on a distroless base with CA certificates.
#   docker build -t switchyard .
#   docker run -p 8080:8080 switchyard                      # embedded default: offline demo models
#   docker run -p 8080:8080 -e OPENAI_API_KEY=sk-... switchyard
FROM rust:1.95-alpine AS build
# aws-lc-rs (rustls' crypto) builds C with cmake; musl gives a fully static binary.
RUN apk add --no-cache musl-dev cmake make clang perl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY config config
COPY benches benches
RUN cargo build --release --locked && strip target/release/switchyard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY config /etc/switchyard
ENV SWITCHYARD_LOG_FORMAT=json
EXPOSE 8080
USER nonroot
# The embedded default keeps its ledger in ./data/usage.jsonl: run where nonroot can write.
WORKDIR /home/nonroot
# No file at /etc/switchyard/switchyard.yaml is required: the binary embeds the default.
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve"]
