//! pg_catalog's vector columns. Postgres' `int2vector`, `oidvector` and `int2[]` columns
//! (`pg_index.indkey`, `pg_constraint.conkey`, ...) are text in datafusion-pg-catalog, as
//! Postgres prints a vector (`1 2`) or as Arrow prints a list (`[1, 2]`), so `conkey[1]` fails
//! to plan as an array subscript; pgjdbc's foreign-key metadata (`getImportedKeys`,
//! `getExportedKeys`) reads them so. Here `v[i]` of a text is its i-th number (from 1), null
//! past its end, as for an array; `_pg_vector(text)` is the array itself.

use std::sync::Arc;

use datafusion::{
    arrow::{
        array::{Array, Int64Array, ListArray, StringArray},
        buffer::OffsetBuffer,
        datatypes::{DataType, Field},
    },
    common::{DFSchema, cast::as_string_array, exec_err},
    error::DataFusionError,
    execution::SessionStateBuilder,
    functions_nested::expr_fn::array_element,
    logical_expr::{
        ColumnarValue, ExprSchemable, GetFieldAccess, ScalarUDF, Volatility, create_udf,
        planner::{ExprPlanner, PlannerResult, RawFieldAccessExpr},
    },
    prelude::SessionContext,
};

/// `ctx` with `_pg_vector` and the subscript planner, which goes first, before DataFusion's
/// array subscripts.
pub fn install(ctx: SessionContext) -> SessionContext {
    let vector = Arc::new(vector_udf());
    let state = ctx.state();
    let planners = std::iter::once(Arc::new(VectorSubscript {
        vector: Arc::clone(&vector),
    }) as Arc<dyn ExprPlanner>)
    .chain(state.expr_planners().iter().cloned())
    .collect();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_expr_planners(planners)
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udf(vector.as_ref().clone());
    ctx
}

/// The numbers of each text, as lists; null stays null.
pub fn parse(text: &StringArray) -> Result<ListArray, DataFusionError> {
    let mut lengths = Vec::with_capacity(text.len());
    let mut values = Vec::new();
    for row in 0..text.len() {
        let before = values.len();
        if text.is_valid(row) {
            let vector = text.value(row);
            let inner = vector.trim().trim_start_matches(['[', '{']);
            let inner = inner.trim_end_matches([']', '}']);
            for word in inner.split([' ', ',']).filter(|w| !w.is_empty()) {
                let Ok(value) = word.parse::<i64>() else {
                    return exec_err!("{vector:?} is not a vector of integers");
                };
                values.push(value);
            }
        }
        lengths.push(values.len() - before);
    }
    Ok(ListArray::try_new(
        Arc::new(Field::new("item", DataType::Int64, true)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(Int64Array::from(values)),
        text.nulls().cloned(),
    )?)
}

fn vector_udf() -> ScalarUDF {
    create_udf(
        "_pg_vector",
        vec![DataType::Utf8],
        DataType::new_list(DataType::Int64, true),
        Volatility::Immutable,
        Arc::new(|args| {
            let text = ColumnarValue::values_to_arrays(args)?;
            Ok(ColumnarValue::Array(Arc::new(parse(as_string_array(
                &text[0],
            )?)?)))
        }),
    )
}

#[derive(Debug)]
struct VectorSubscript {
    vector: Arc<ScalarUDF>,
}

impl ExprPlanner for VectorSubscript {
    fn plan_field_access(
        &self,
        access: RawFieldAccessExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawFieldAccessExpr>, DataFusionError> {
        let RawFieldAccessExpr { field_access, expr } = access;
        match field_access {
            GetFieldAccess::ListIndex { key } if is_text(&expr.get_type(schema)?) => {
                let vector = self.vector.call(vec![expr]);
                Ok(PlannerResult::Planned(array_element(vector, *key)))
            }
            field_access => Ok(PlannerResult::Original(RawFieldAccessExpr {
                field_access,
                expr,
            })),
        }
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn numbers(ctx: &SessionContext, sql: &str) -> Vec<Option<i64>> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches[0]
            .columns()
            .iter()
            .map(|c| {
                let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
                c.is_valid(0).then(|| c.value(0))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_text_vector_is_subscripted_by_its_numbers() {
        let ctx = install(SessionContext::new());
        for vector in ["3 17", "[3, 17]", "{3,17}"] {
            let sql = format!("SELECT v[1], v[2], v[3] FROM (VALUES ('{vector}')) AS t(v)");
            assert_eq!(numbers(&ctx, &sql).await, vec![Some(3), Some(17), None]);
        }
        let sql = "SELECT make_array(5, 6)[2]";
        assert_eq!(numbers(&ctx, sql).await, vec![Some(6)], "arrays as before");
        let error = ctx
            .sql("SELECT v[1] FROM (VALUES ('x y')) AS t(v)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not a vector"), "{error}");
    }
}
