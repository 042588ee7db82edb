//! Functions Postgres clients call when they connect or introspect, which DataFusion and
//! datafusion-postgres answer differently or not at all: `version()` in Postgres' own form
//! (SQLAlchemy parses the `PostgreSQL N.N` it starts with, and refuses to connect otherwise),
//! `to_regtype(name)` (psycopg's type lookups, SQLAlchemy's dialect start-up),
//! `pg_get_serial_sequence` and `json_build_object` (SQLAlchemy's column introspection: no
//! table has a sequence or an identity column; every collation and type is `pg_catalog`'s, so
//! visible),
//! `pg_table_is_visible(oid)`, true only for tables on the search path (`public`, and
//! `pg_catalog` as Postgres always adds it), so that `\dt` and SQLAlchemy's inspector list each
//! table once, not its `history` twin too, `session_user` naming the user who logged in, and
//! `_pg_expandarray_rows` (see [`super::rewrite`]).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use datafusion::{
    arrow::{
        array::{Array, BooleanArray, Int32Array, StringArray},
        datatypes::DataType,
    },
    common::{
        ScalarValue,
        cast::{as_int32_array, as_string_array},
    },
    error::DataFusionError,
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
        create_udf,
    },
    prelude::SessionContext,
};

/// The Postgres release whose protocol and catalog the endpoint speaks (what pgwire and
/// datafusion-postgres model), as `version()` and `server_version` name it.
pub const POSTGRES_VERSION: &str = "16.6";

/// Registers the functions in a session, over those of the same names. The session's tables
/// off the search path are told to the returned [`Visibility`] as they change.
pub fn register(ctx: &SessionContext, user: &str) -> Arc<Visibility> {
    let visibility = Arc::new(Visibility::default());
    ctx.register_udf(version_udf());
    ctx.register_udf(session_user_udf(user));
    ctx.register_udf(super::rewrite::ExpandArrayRows::udf());
    ctx.register_udf(to_regtype_udf());
    ctx.register_udf(serial_sequence_udf());
    ctx.register_udf(index_definition_udf());
    ctx.register_udf(json_build_object_udf());
    for name in ["pg_collation_is_visible", "pg_type_is_visible"] {
        ctx.register_udf(always_visible_udf(name));
    }
    ctx.register_udf(table_is_visible_udf(Arc::clone(&visibility)));
    visibility
}

/// The oids of a session's tables that are not on its search path.
#[derive(Debug, Default)]
pub struct Visibility {
    hidden: RwLock<HashSet<i32>>,
}

impl Visibility {
    /// Reads again which tables are off the search path (after tables were registered: their
    /// oids are pg_catalog's, stable per name).
    pub async fn update(&self, ctx: &SessionContext) -> Result<(), DataFusionError> {
        let batches = ctx
            .sql(
                "SELECT c.oid FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('public', 'pg_catalog')",
            )
            .await?
            .collect()
            .await?;
        let mut hidden = HashSet::new();
        for batch in &batches {
            let oids = datafusion::arrow::compute::cast(batch.column(0), &DataType::Int32)?;
            hidden.extend(as_int32_array(&oids)?.iter().flatten());
        }
        *self.hidden.write().unwrap_or_else(|e| e.into_inner()) = hidden;
        Ok(())
    }
}

fn table_is_visible_udf(visibility: Arc<Visibility>) -> ScalarUDF {
    create_udf(
        "pg_table_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(move |args| {
            let oids = ColumnarValue::values_to_arrays(args)?;
            let oids = as_int32_array(&oids[0])?;
            let hidden = visibility.hidden.read().unwrap_or_else(|e| e.into_inner());
            let visible: BooleanArray = oids
                .iter()
                .map(|oid| oid.map(|oid| !hidden.contains(&oid)))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(visible)))
        }),
    )
}

/// `pg_collation_is_visible(oid)`, `pg_type_is_visible(oid)`: true, as everything of the
/// kind is in `pg_catalog`, which is always on the search path.
fn always_visible_udf(name: &str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    )
}

/// `session_user` (and `current_user`, which datafusion-pg-catalog reads as it): the one user
/// the endpoint lets in, where datafusion-pg-catalog answers `postgres`. DBeaver shows it and
/// reads the user's schemas by it.
fn session_user_udf(user: &str) -> ScalarUDF {
    let user = ScalarValue::Utf8(Some(user.to_owned()));
    create_udf(
        "session_user",
        Vec::new(),
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(user.clone()))),
    )
}

/// `pg_get_indexdef(index [, column, pretty])`: null, as Postgres answers for an oid that is
/// not an index's: no table has an index here (pgjdbc's `getIndexInfo` names the columns of an
/// index with it).
fn index_definition_udf() -> ScalarUDF {
    ScalarUDF::from(Unknown {
        name: "pg_get_indexdef",
        signature: Signature::variadic_any(Volatility::Stable),
    })
}

/// A function of a catalog object that this catalog never has: null for any arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Unknown {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for Unknown {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType, DataFusionError> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> Result<ColumnarValue, DataFusionError> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// `pg_get_serial_sequence(table, column)`: null, as for a column with no sequence.
fn serial_sequence_udf() -> ScalarUDF {
    ScalarUDF::from(Unknown {
        name: "pg_get_serial_sequence",
        signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Stable),
    })
}

/// `version()`: `PostgreSQL 16.6 on x86_64-linux, Weave Scope 0.1.0 (Apache DataFusion 55.2.0),
/// read-only`.
fn version_udf() -> ScalarUDF {
    let text = format!(
        "PostgreSQL {POSTGRES_VERSION} on {}-{}, Weave Scope {} (Apache DataFusion {}), read-only",
        std::env::consts::ARCH,
        std::env::consts::OS,
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
    );
    create_udf(
        "version",
        Vec::new(),
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// `to_regtype(name)`: the oid of a built-in type by any of its names, or null (as Postgres
/// answers for a type it does not have, such as an extension's `hstore`).
fn to_regtype_udf() -> ScalarUDF {
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args| {
            let names = ColumnarValue::values_to_arrays(args)?;
            let names = as_string_array(&names[0])?;
            let oids: Int32Array = (0..names.len())
                .map(|i| {
                    (!names.is_null(i))
                        .then(|| type_oid(names.value(i)))
                        .flatten()
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(oids)))
        }),
    )
}

/// Postgres' oids of the built-in types this endpoint can return, by their names and aliases.
fn type_oid(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let oid = match name {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "regproc" => 24,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "bpchar" | "character" => 1042,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        "regclass" => 2205,
        "regtype" => 2206,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    };
    Some(oid)
}

/// `json_build_object(key, value, ...)`: a JSON object of its pairs, as text. SQLAlchemy's
/// column introspection builds a column's identity options with it (never true here, as no
/// column is an identity, but planned all the same).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

fn json_build_object_udf() -> ScalarUDF {
    ScalarUDF::from(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType, DataFusionError> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue, DataFusionError> {
        if !args.args.len().is_multiple_of(2) {
            return Err(DataFusionError::Plan(
                "json_build_object takes key, value pairs: an even number of arguments".into(),
            ));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = arrays.first().map_or(1, |a| a.len());
        let objects: StringArray = (0..rows)
            .map(|row| {
                let mut object = serde_json::Map::new();
                for pair in arrays.chunks(2) {
                    let key = ScalarValue::try_from_array(&pair[0], row)?.to_string();
                    let value = json_value(ScalarValue::try_from_array(&pair[1], row)?);
                    object.insert(key, value);
                }
                Ok(Some(serde_json::Value::Object(object).to_string()))
            })
            .collect::<Result<_, DataFusionError>>()?;
        Ok(ColumnarValue::Array(Arc::new(objects)))
    }
}

fn json_value(value: ScalarValue) -> serde_json::Value {
    if value.is_null() {
        return serde_json::Value::Null;
    }
    match value {
        ScalarValue::Boolean(Some(b)) => b.into(),
        v if v.data_type().is_integer() => v.to_string().parse::<i64>().map_or_else(
            |_| serde_json::Value::String(v.to_string()),
            serde_json::Value::from,
        ),
        v if v.data_type().is_floating() => v
            .to_string()
            .parse::<f64>()
            .map_or(serde_json::Value::Null, serde_json::Value::from),
        v => serde_json::Value::String(v.to_string()),
    }
}
