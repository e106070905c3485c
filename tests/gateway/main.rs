//! Integration tests: the real gateway on 127.0.0.1:0 in front of mock upstreams that speak
//! the OpenAI wire format (PROTOCOLS.md) and fail on command.

mod anthropic_upstream;
mod certs;
mod harness;
mod mock_anthropic;
mod mock_dashscope;
mod mock_media;
mod mock_openai;
mod mock_server;
mod redis_servers;
mod tcp_proxy;

mod architecture;
mod audio;
mod budgets;
mod cache;
mod chat;
mod cli;
mod completions;
mod control;
mod cors;
mod dashboard;
mod dashscope;
mod docs;
mod dropin;
mod embeddings_models;
mod errors;
mod fleet;
mod grafana;
mod hostile;
mod ledger;
mod limits;
mod memory;
mod messages;
mod mixups;
mod moderations_images;
mod pg_fleet;
mod redis_fleet;
mod rerank;
mod responses;
mod routing;
mod server;
mod sessions;
mod traces;
mod usage_schema;
