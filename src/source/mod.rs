//! Where items come from: a segmented parallel Scan (`scan`) whose responses are parsed off the
//! network tasks (`raw`, with a fast path for well-formed pages in `fast_json`), or the data files of an existing DynamoDB export ([`export`]), in DynamoDB JSON or Ion text.

mod dynamo_json;
pub mod export;
mod fast_json;
mod ion;
pub(crate) mod raw;
pub(crate) mod scan;
pub mod stream;
