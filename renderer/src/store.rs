//! The snapshot store as the renderer uses it: [`scope_store`]'s listing and durable write,
//! its errors as the renderer's [`Error`] variants, and the renderer's writer name.

pub use scope_store::{TableFile, files_at, list, read, rows, write};

use crate::Error;

/// The writer name of the files the renderer writes.
pub const RENDERER_WRITER: &str = "renderer";

impl From<scope_store::Error> for Error {
    fn from(error: scope_store::Error) -> Self {
        match error {
            scope_store::Error::ReadDir { path, source } => Error::ReadDir { path, source },
            scope_store::Error::WriteFile { path, source } => Error::WriteFile { path, source },
            scope_store::Error::WriteParquet { path, source } => {
                Error::WriteParquet { path, source }
            }
            scope_store::Error::ReadParquet { path, source } => Error::ReadParquet { path, source },
            scope_store::Error::Delete { path, source } => Error::Delete { path, source },
        }
    }
}
