//! `SHOW` of the server's settings and the session's time zone. datafusion-postgres answers
//! `SHOW server_version` with DataFusion's version, and a name it does not know (`SHOW
//! timezone`, which Metabase asks to know the zone a database reports times in) with an empty
//! value. Here the settings of [`super::settings`] and `TimeZone` (as the client set it when it
//! connected or with `SET`; UTC otherwise) are answered, and other names as datafusion-postgres
//! answers them.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::{
    arrow::{
        array::{RecordBatch, StringArray},
        datatypes::{DataType, Field, Schema},
    },
    common::ParamValues,
    dataframe::DataFrame,
    logical_expr::LogicalPlan,
    prelude::SessionContext,
    sql::sqlparser::ast::Statement,
};
use datafusion_postgres::{
    QueryHook,
    hooks::HookClient,
    pgwire::{
        api::{ClientInfo, results::Response},
        error::{PgWireError, PgWireResult},
    },
};

use super::{settings, text_rows};

pub struct Show;

/// The setting `statement` shows, by the name Postgres heads its column with, and its value;
/// None for any other statement.
fn shown(statement: &Statement, client: &dyn ClientInfo) -> Option<(String, String)> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let name: Vec<String> = variable.iter().map(|i| i.value.to_lowercase()).collect();
    let name = name.join(" ");
    if name == "timezone" || name == "time zone" {
        let metadata = client.metadata();
        // `SET TIME ZONE` is kept under the first, the start-up parameter under the second.
        let zone = metadata
            .get("timezone")
            .or_else(|| metadata.get("TimeZone"))
            .map_or("UTC", String::as_str);
        return Some(("TimeZone".into(), zone.into()));
    }
    let value = settings::value(&name)?;
    Some((name, value))
}

/// One row, one text column named `name`.
fn answer(ctx: &SessionContext, (name, value): (String, String)) -> PgWireResult<DataFrame> {
    let schema = Schema::new(vec![Field::new(name, DataType::Utf8, false)]);
    let value = Arc::new(StringArray::from(vec![value]));
    RecordBatch::try_new(Arc::new(schema), vec![value])
        .map_err(Into::into)
        .and_then(|batch| ctx.read_batch(batch))
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

#[async_trait]
impl QueryHook for Show {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let setting = shown(statement, client)?;
        Some(match answer(session_context, setting) {
            Ok(frame) => text_rows(frame, client).await,
            Err(error) => Err(error),
        })
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let setting = shown(statement, client)?;
        Some(answer(session_context, setting).map(|frame| frame.logical_plan().clone()))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Read again: a SET may have come between Parse and Execute.
        self.handle_simple_query(statement, session_context, client)
            .await
    }
}
