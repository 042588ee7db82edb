//! `scope_selects(selector, labels)`: whether a Kubernetes label selector (a service's
//! `spec.selector`, equality only, as services have) selects an object with `labels`.
//!
//! Both are `Map(Utf8, Utf8)` columns (`kubernetes_objects.selector`, `.labels`). An empty
//! selector selects nothing, as a service without a selector has no endpoints of its own;
//! null in, null out. A function rather than SQL over unnested maps because a selector is a
//! set containment test, which SQL says only with a grouped anti-join per pair.

use std::sync::Arc;

use arrow::{
    array::{Array, ArrayRef, BooleanArray, MapArray, StringArray},
    datatypes::DataType,
};
use datafusion::{
    common::exec_err,
    error::Result as DfResult,
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

/// SQL name of the selector test.
pub const SELECTS: &str = "scope_selects";

/// `scope_selects(selector, labels)`.
pub fn selects_udf() -> ScalarUDF {
    ScalarUDF::from(Selects {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Selects {
    signature: Signature,
}

/// The `(key, value)` entries of row `row` of a map of strings.
fn entries(map: &MapArray, row: usize) -> DfResult<Vec<(&str, Option<&str>)>> {
    let offsets = map.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let (Some(keys), Some(values)) = (
        map.keys().as_any().downcast_ref::<StringArray>(),
        map.values().as_any().downcast_ref::<StringArray>(),
    ) else {
        return exec_err!("{SELECTS}: expected maps of strings");
    };
    Ok((start..end)
        .map(|i| (keys.value(i), values.is_valid(i).then(|| values.value(i))))
        .collect())
}

fn as_map<'a>(array: &'a ArrayRef, what: &str) -> DfResult<&'a MapArray> {
    match array.as_any().downcast_ref::<MapArray>() {
        Some(map) => Ok(map),
        None => exec_err!("{SELECTS}: {what} must be a map, not {}", array.data_type()),
    }
}

impl ScalarUDFImpl for Selects {
    fn name(&self) -> &str {
        SELECTS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [selector, labels] = args.args.as_slice() else {
            return exec_err!("{SELECTS} takes 2 arguments, got {}", args.args.len());
        };
        let all_scalar = args
            .args
            .iter()
            .all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let (selector, labels) = (selector.to_array(rows)?, labels.to_array(rows)?);
        let (selector, labels) = (
            as_map(&selector, "the selector")?,
            as_map(&labels, "labels")?,
        );
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if selector.is_null(row) || labels.is_null(row) {
                out.push(None);
                continue;
            }
            let wanted = entries(selector, row)?;
            let have = entries(labels, row)?;
            let selected = !wanted.is_empty()
                && wanted
                    .iter()
                    .all(|(key, value)| have.iter().any(|(k, v)| k == key && v == value));
            out.push(Some(selected));
        }
        let result = Arc::new(BooleanArray::from(out)) as ArrayRef;
        Ok(if all_scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use scope_schemas::tables::labels_column;

    use super::*;
    use crate::network::invoke;

    fn maps(rows: &[&[(&str, &str)]]) -> ArrayRef {
        labels_column(rows.iter().map(|r| r.iter().copied())).unwrap()
    }

    #[test]
    fn a_selector_selects_objects_carrying_all_its_labels() {
        let selector = maps(&[
            &[("app", "web")],
            &[("app", "web"), ("tier", "front")],
            &[("app", "web"), ("tier", "front")],
            &[],
            &[("app", "db")],
        ]);
        let labels = maps(&[
            &[("app", "web"), ("pod-template-hash", "abc")],
            &[("app", "web"), ("tier", "front")],
            &[("app", "web")],
            &[("app", "web")],
            &[("app", "web")],
        ]);
        let result = invoke(&selects_udf(), &[selector, labels]).unwrap();
        let result = result.as_any().downcast_ref::<BooleanArray>().unwrap();
        let got: Vec<Option<bool>> = result.iter().collect();
        assert_eq!(
            got,
            vec![
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(false)
            ]
        );
    }

    #[test]
    fn anything_but_maps_is_an_error() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["app=web"]));
        let err = invoke(&selects_udf(), &[Arc::clone(&text), text]).unwrap_err();
        assert!(err.to_string().contains("must be a map"), "{err}");
    }
}
