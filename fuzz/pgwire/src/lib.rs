pub use pgwire;
