//! pg_catalog's vector and array columns. Postgres' `int2vector` and `oidvector`
//! (`pg_index.indkey`, `indoption`) and its `int2[]` columns (`pg_constraint.conkey`) are text
//! in datafusion-pg-catalog, a vector as Postgres prints it (`1 2`), an array as Arrow prints a
//! list (`[1, 2]`), so `conkey[1]` fails to plan as an array subscript; pgjdbc's key and index
//! metadata (`getImportedKeys`, `getExportedKeys`, `getIndexInfo`) reads them so. Here a
//! subscript of such a text is its number at that position, counted as Postgres counts it
//! (from 0 in a vector, from 1 in an array), and null past its end, as Postgres answers.

use std::sync::Arc;

use datafusion::{
    arrow::{
        array::{Array, Int64Array, ListArray, StringArray},
        buffer::OffsetBuffer,
        datatypes::{DataType, Field},
    },
    common::{
        DFSchema,
        cast::{as_int64_array, as_string_array},
        exec_err,
    },
    error::DataFusionError,
    execution::SessionStateBuilder,
    logical_expr::{
        ColumnarValue, ExprSchemable, GetFieldAccess, ScalarUDF, Volatility, create_udf,
        planner::{ExprPlanner, PlannerResult, RawFieldAccessExpr},
    },
    prelude::{SessionContext, cast},
};

/// `ctx` with the subscript planner, which goes first, before DataFusion's array subscripts.
pub fn install(ctx: SessionContext) -> SessionContext {
    let state = ctx.state();
    let planners = std::iter::once(Arc::new(VectorSubscript {
        subscript: Arc::new(subscript_udf()),
    }) as Arc<dyn ExprPlanner>)
    .chain(state.expr_planners().iter().cloned())
    .collect();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_expr_planners(planners)
        .build();
    SessionContext::new_with_state(state)
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

/// `text[i]`, planned by [`VectorSubscript`].
fn subscript_udf() -> ScalarUDF {
    create_udf(
        "_pg_subscript",
        vec![DataType::Utf8, DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args| {
            let args = ColumnarValue::values_to_arrays(args)?;
            let texts = as_string_array(&args[0])?;
            let lists = parse(texts)?;
            let positions = as_int64_array(&args[1])?;
            let numbers: Int64Array = (0..lists.len())
                .map(|row| {
                    if lists.is_null(row) || positions.is_null(row) {
                        return None;
                    }
                    let first = if is_array(texts.value(row)) { 1 } else { 0 };
                    let index = usize::try_from(positions.value(row) - first).ok()?;
                    let numbers = lists.value(row);
                    let numbers = numbers.as_any().downcast_ref::<Int64Array>()?;
                    (index < numbers.len()).then(|| numbers.value(index))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(numbers)))
        }),
    )
}

/// Whether a text is an array as Arrow prints one, rather than a vector.
fn is_array(text: &str) -> bool {
    text.trim_start().starts_with(['[', '{'])
}

#[derive(Debug)]
struct VectorSubscript {
    subscript: Arc<ScalarUDF>,
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
                let key = cast(*key, DataType::Int64);
                Ok(PlannerResult::Planned(self.subscript.call(vec![expr, key])))
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
        let sql = "SELECT v[0], v[1], v[2] FROM (VALUES ('3 17')) AS t(v)";
        assert_eq!(numbers(&ctx, sql).await, vec![Some(3), Some(17), None]);
        for array in ["[3, 17]", "{3,17}"] {
            let sql = format!("SELECT v[1], v[2], v[3] FROM (VALUES ('{array}')) AS t(v)");
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
