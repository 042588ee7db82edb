//! Postgres syntax that JDBC's catalog queries use and DataFusion does not plan, rewritten
//! into what it does, before a statement is planned:
//!
//! - `(expr).field`, Postgres' access to a field of a composite value, becomes
//!   `get_field(expr, 'field')` (DataFusion reads `col.field` of a column only);
//! - `information_schema._pg_expandarray(array)`, a set-returning function in the select list
//!   (one row `(x, n)` per element: pgjdbc's `getPrimaryKeys`, `getIndexInfo` and
//!   `getBestRowIdentifier` join index keys to columns with it), becomes
//!   `unnest(_pg_expandarray_rows(array))`: the same rows, as DataFusion unnests a list of
//!   structs (see [`super::functions`]).
//!
//! A statement that needs neither is planned as datafusion-postgres plans it.

use std::{ops::ControlFlow, sync::Arc};

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, Int32Array, ListArray, StructArray},
        buffer::OffsetBuffer,
        datatypes::{DataType, Field, Fields},
    },
    common::{cast::as_string_array, exec_err},
    error::DataFusionError,
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
    sql::sqlparser::ast::{
        AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
        FunctionArguments, Ident, ObjectName, Statement, Value, visit_expressions_mut,
    },
};

/// The name `_pg_expandarray` is rewritten to call, inside `unnest`.
pub const EXPANDARRAY_ROWS: &str = "_pg_expandarray_rows";

/// `statement` with the rewrites above, or None when it needs none.
pub fn rewrite(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut changed = false;
    // Children are visited first, so `(_pg_expandarray(a)).n` meets its function rewritten.
    let _ = visit_expressions_mut(&mut rewritten, |expr| {
        if let Some(new) = rewrite_expr(expr) {
            *expr = new;
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(rewritten)
}

fn rewrite_expr(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Function(function) if last_name(&function.name) == Some("_pg_expandarray") => {
            let mut rows = function.clone();
            rows.name = ObjectName::from(vec![Ident::new(EXPANDARRAY_ROWS)]);
            Some(call("unnest", vec![Expr::Function(rows)]))
        }
        Expr::CompoundFieldAccess { root, access_chain }
            if matches!(root.as_ref(), Expr::Nested(_))
                && access_chain.iter().any(|a| field_name(a).is_some()) =>
        {
            // Subscripts (`(a)[1]`) stay as they are, on what the fields before them read.
            let mut expr = root.as_ref().clone();
            for access in access_chain {
                expr = match field_name(access) {
                    Some(field) => call(
                        "get_field",
                        vec![expr, Expr::value(Value::SingleQuotedString(field.into()))],
                    ),
                    None => Expr::CompoundFieldAccess {
                        root: Box::new(expr),
                        access_chain: vec![access.clone()],
                    },
                };
            }
            Some(expr)
        }
        _ => None,
    }
}

fn last_name(name: &ObjectName) -> Option<&str> {
    name.0.last()?.as_ident().map(|ident| ident.value.as_str())
}

fn field_name(access: &AccessExpr) -> Option<&str> {
    match access {
        AccessExpr::Dot(Expr::Identifier(ident)) => Some(&ident.value),
        _ => None,
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// `_pg_expandarray_rows(array)`: `_pg_expandarray`'s rows as a list of `{x, n}` structs:
/// each element and its position from 1. pg_catalog's vectors (`pg_index.indkey`,
/// `pg_constraint.conkey`) are text here: those are read as [`super::vectors`] reads them.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExpandArrayRows {
    signature: Signature,
}

impl ExpandArrayRows {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(ExpandArrayRows {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

fn row_fields(element: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("x", element.clone(), true),
        Field::new("n", DataType::Int32, false),
    ])
}

fn element_type(input: &DataType) -> Result<DataType, DataFusionError> {
    match input {
        DataType::List(field) => Ok(field.data_type().clone()),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => {
            Ok(DataType::Int64)
        }
        other => exec_err!("_pg_expandarray takes an array, not {other}"),
    }
}

impl ScalarUDFImpl for ExpandArrayRows {
    fn name(&self) -> &str {
        EXPANDARRAY_ROWS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType, DataFusionError> {
        let fields = row_fields(&element_type(&arg_types[0])?);
        Ok(DataType::new_list(DataType::Struct(fields), true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue, DataFusionError> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let list = match arrays[0].data_type() {
            DataType::List(_) => arrays[0].as_any().downcast_ref::<ListArray>().cloned(),
            _ => {
                let text = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
                Some(super::vectors::parse(as_string_array(&text)?)?)
            }
        };
        let Some(list) = list else {
            return exec_err!("_pg_expandarray takes an array");
        };
        let offsets = list.offsets();
        let first = offsets[0] as usize;
        let values = list
            .values()
            .slice(first, offsets[list.len()] as usize - first);
        let positions: Int32Array = (0..list.len())
            .flat_map(|row| 1..=(offsets[row + 1] - offsets[row]))
            .collect();
        let fields = row_fields(values.data_type());
        let rows = StructArray::try_new(
            fields.clone(),
            vec![values, Arc::new(positions) as ArrayRef],
            None,
        )?;
        let rebased = OffsetBuffer::new(offsets.iter().map(|o| o - offsets[0]).collect());
        let expanded = ListArray::try_new(
            Arc::new(Field::new("item", DataType::Struct(fields), true)),
            rebased,
            Arc::new(rows),
            list.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(expanded)))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};

    use super::*;

    fn rewritten(sql: &str) -> Option<String> {
        let statement = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statement())
            .unwrap();
        rewrite(&statement).map(|s| s.to_string())
    }

    #[test]
    fn composite_fields_and_expandarray_are_rewritten() {
        assert_eq!(
            rewritten("SELECT (information_schema._pg_expandarray(i.indkey)).n, (r.keys).x FROM t")
                .as_deref(),
            Some(
                "SELECT get_field((unnest(_pg_expandarray_rows(i.indkey))), 'n'), \
                 get_field((r.keys), 'x') FROM t"
            )
        );
        assert_eq!(rewritten("SELECT a.b, c[1], (d)[1] FROM t"), None);
    }
}
