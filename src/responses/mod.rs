//! The Responses API (PROTOCOLS.md §10) on the chat pipeline: requests checked and turned into
//! chat requests ([`request`]), chat answers and streams turned into responses and their events
//! ([`response`], [`stream`]), all pure; and the stored responses behind `previous_response_id`,
//! `item_reference` and `GET /v1/responses/{id}` ([`store`]).

pub mod ids;
pub mod request;
pub mod response;
pub mod store;
pub mod stream;

#[cfg(test)]
mod tests;
