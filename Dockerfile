# Builds the `clv` binary once; every service of docker-compose.yml runs it with another subcommand.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p clv && cp target/release/clv /usr/local/bin/clv

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/clv /usr/local/bin/clv
WORKDIR /data
ENTRYPOINT ["clv"]
