//! The server's settings, in `pg_catalog.pg_settings` (for clients that read them from it rather
//! than with `SHOW`, see [`super::show`]): datafusion-pg-catalog's holds
//! `standard_conforming_strings` only, and pgjdbc's foreign-key metadata (`getImportedKeys`,
//! `getExportedKeys`: DBeaver's and Metabase's relations) fails without `max_index_keys`. The
//! rest of pg_catalog is datafusion-pg-catalog's.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::{
    arrow::{
        array::{ArrayRef, RecordBatch, StringArray, new_null_array},
        datatypes::DataType,
    },
    catalog::{MemTable, SchemaProvider, TableProvider},
    common::plan_err,
    error::DataFusionError,
    prelude::SessionContext,
};

use super::functions::POSTGRES_VERSION;

/// The server's version as it reports it (`server_version`), naming Scope after Postgres' number
/// as a packaged Postgres names its distribution.
pub fn server_version() -> String {
    format!(
        "{POSTGRES_VERSION} (Weave Scope {})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The value of setting `name` (lower case), if it is one of [`settings`].
pub fn value(name: &str) -> Option<String> {
    settings()
        .into_iter()
        .find_map(|(setting, value)| (setting == name).then_some(value))
}

/// Name and value of each setting, as Postgres 16 reports them for a read-only session.
fn settings() -> Vec<(&'static str, String)> {
    let (major, minor) = POSTGRES_VERSION
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)))
        .unwrap_or_default();
    vec![
        ("default_transaction_read_only", "on".into()),
        ("integer_datetimes", "on".into()),
        ("max_identifier_length", "63".into()),
        ("max_index_keys", "32".into()),
        ("server_encoding", "UTF8".into()),
        ("server_version", server_version()),
        ("server_version_num", (major * 10_000 + minor).to_string()),
        ("standard_conforming_strings", "on".into()),
        ("transaction_read_only", "on".into()),
    ]
}

/// Puts [`settings`] in the session's `pg_catalog.pg_settings` (after `setup_pg_catalog`).
pub async fn install(ctx: &SessionContext) -> Result<(), DataFusionError> {
    let Some(catalog) = ctx.catalog("datafusion") else {
        return plan_err!("no catalog datafusion to add pg_settings to");
    };
    let Some(inner) = catalog.schema("pg_catalog") else {
        return plan_err!("no pg_catalog to add pg_settings to");
    };
    // Its schema is datafusion-pg-catalog's; the columns other than these two are null.
    let schema = inner
        .table("pg_settings")
        .await?
        .map(|table| table.schema());
    let Some(schema) = schema else {
        return plan_err!("pg_catalog has no pg_settings to extend");
    };
    let rows = settings();
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            match field.name().as_str() {
                "name" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                "setting" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
                _ => new_null_array(field.data_type(), rows.len()),
            }
        })
        .collect();
    if schema.field_with_name("setting")?.data_type() != &DataType::Utf8 {
        return plan_err!("pg_settings.setting is not text");
    }
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let pg_settings = Arc::new(MemTable::try_new(schema, vec![vec![batch]])?);
    catalog.register_schema("pg_catalog", Arc::new(PgCatalog { inner, pg_settings }))?;
    Ok(())
}

/// datafusion-pg-catalog's pg_catalog, but for `pg_settings`.
#[derive(Debug)]
struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    pg_settings: Arc<dyn TableProvider>,
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if name.eq_ignore_ascii_case("pg_settings") {
            return Ok(Some(Arc::clone(&self.pg_settings)));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}
