pub mod sql {
    pub use sqlparser;
}
