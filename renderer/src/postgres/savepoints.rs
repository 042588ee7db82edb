//! `SAVEPOINT`, `RELEASE` and `ROLLBACK TO`, answered as a read-only Postgres answers them:
//! nothing to undo, so each only succeeds. SQLAlchemy (and so pandas and most notebooks) nests
//! its transactions with them; datafusion-postgres answers `BEGIN`, `COMMIT` and `ROLLBACK`
//! but would plan these, and fail.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::{
    common::{DFSchema, ParamValues},
    logical_expr::{EmptyRelation, LogicalPlan},
    prelude::SessionContext,
    sql::sqlparser::ast::Statement,
};
use datafusion_postgres::{
    QueryHook,
    hooks::HookClient,
    pgwire::{
        api::{
            ClientInfo,
            results::{Response, Tag},
        },
        error::PgWireResult,
    },
};

pub struct Savepoints;

/// The answer to a savepoint statement; none for any other.
fn answer(statement: &Statement) -> Option<Response> {
    let tag = match statement {
        Statement::Savepoint { .. } => "SAVEPOINT",
        Statement::ReleaseSavepoint { .. } => "RELEASE",
        // Within the transaction, unlike a plain ROLLBACK, which ends it.
        Statement::Rollback {
            savepoint: Some(_), ..
        } => "ROLLBACK",
        _ => return None,
    };
    Some(Response::Execution(Tag::new(tag)))
}

#[async_trait]
impl QueryHook for Savepoints {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement).map(Ok)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Nothing to plan: answered when executed.
        answer(statement).map(|_| {
            Ok(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            }))
        })
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement).map(Ok)
    }
}
