//! The bodies of a route as its `routes!` entry names them: the media type, the JSON Schema of
//! the Rust type that reads or writes it, and an example request.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

/// A body of a route: its media type, the schema of the type that reads or writes it, and an
/// example (JSON text, for request bodies).
#[derive(Debug, Clone, Copy)]
pub struct Body {
    /// `application/json`, or `text/plain` for the signed checkpoint.
    pub content_type: &'static str,
    /// The schema, from the Rust type.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// An example (request bodies).
    pub example: Option<fn() -> Value>,
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A JSON request body read as `T`, with an example.
pub const fn takes<T: JsonSchema>(example: fn() -> Value) -> Body {
    Body { content_type: "application/json", schema: schema_of::<T>, example: Some(example) }
}

/// A JSON response written from `T`.
pub const fn replies<T: JsonSchema>() -> Body {
    Body { content_type: "application/json", schema: schema_of::<T>, example: None }
}

/// A plain-text response.
pub const fn replies_text() -> Body {
    Body { content_type: "text/plain", schema: schema_of::<String>, example: None }
}
