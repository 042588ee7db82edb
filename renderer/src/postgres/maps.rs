//! Map columns (the labels of containers and Kubernetes objects, a service's selector) over
//! Postgres: Postgres has no map type and pgwire cannot send one, so `SELECT *` of such a table
//! failed in every client (DBeaver and Metabase read every column of a table they open).
//! pg_catalog already names these columns `text`; here each table that has one is served as a
//! view of itself with each map as the text of a JSON object, `{"app":"web"}`, which clients
//! show as it is and parse where they want to.

use std::{borrow::Cow, sync::Arc};

use async_trait::async_trait;
use datafusion::{
    arrow::{
        array::{Array, MapArray, StringArray},
        compute::cast,
        datatypes::{DataType, SchemaRef},
    },
    catalog::{Session, TableProvider},
    common::{Column, cast::as_string_array, exec_err},
    datasource::TableType,
    error::DataFusionError,
    logical_expr::{
        ColumnarValue, Expr, LogicalPlan, ScalarUDF, TableProviderFilterPushDown, Volatility,
        create_udf,
    },
    physical_plan::ExecutionPlan,
    prelude::SessionContext,
};

/// Replaces each of `tables` that has a map column with its view (after the tables were
/// registered, which replaced any earlier view).
pub async fn as_json(
    ctx: &SessionContext,
    tables: impl Iterator<Item = String>,
) -> Result<(), DataFusionError> {
    for name in tables {
        let frame = ctx.table(name.as_str()).await?;
        let fields = frame.schema().fields().clone();
        if !fields.iter().any(|f| is_map(f.data_type())) {
            continue;
        }
        let columns = fields.iter().map(|field| {
            let column = Expr::Column(Column::from_name(field.name()));
            match field.data_type() {
                data_type if is_map(data_type) => json_udf(data_type.clone())
                    .call(vec![column])
                    .alias(field.name()),
                _ => column,
            }
        });
        let view = AsTable(frame.select(columns)?.into_view());
        ctx.deregister_table(name.as_str())?;
        ctx.register_table(name.as_str(), Arc::new(view))?;
    }
    Ok(())
}

/// A view shown as the table it stands for: pg_catalog gives a view relkind `v`, and clients
/// list tables as `r` (`\dt`, pgjdbc's `getTables`, SQLAlchemy's inspector).
#[derive(Debug)]
struct AsTable(Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for AsTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        self.0.get_logical_plan()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        self.0.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>, DataFusionError> {
        self.0.supports_filters_pushdown(filters)
    }
}

fn is_map(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Map(..))
}

/// A map's entries as the text of a JSON object, keys and values as text; null stays null.
fn json_udf(map_type: DataType) -> ScalarUDF {
    create_udf(
        "scope_map_json",
        vec![map_type],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| {
            let maps = ColumnarValue::values_to_arrays(args)?;
            let Some(maps) = maps[0].as_any().downcast_ref::<MapArray>() else {
                return exec_err!("scope_map_json takes a map");
            };
            let keys = cast(maps.keys(), &DataType::Utf8)?;
            let keys = as_string_array(&keys)?;
            let values = cast(maps.values(), &DataType::Utf8)?;
            let values = as_string_array(&values)?;
            let offsets = maps.value_offsets();
            let texts: StringArray = (0..maps.len())
                .map(|row| {
                    maps.is_valid(row).then(|| {
                        let entries = offsets[row] as usize..offsets[row + 1] as usize;
                        let object: serde_json::Map<String, serde_json::Value> = entries
                            .map(|i| {
                                let value = values
                                    .is_valid(i)
                                    .then(|| serde_json::Value::from(values.value(i)));
                                (keys.value(i).to_owned(), value.unwrap_or_default())
                            })
                            .collect();
                        serde_json::Value::Object(object).to_string()
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(texts)))
        }),
    )
}
