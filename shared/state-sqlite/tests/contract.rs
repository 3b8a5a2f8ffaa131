//! The SQLite store passes the engine's store contract.

use prmsync_engine::store_contract;
use prmsync_state_sqlite::SqliteStore;

#[tokio::test]
async fn sqlite_store_passes_the_store_contract() {
    store_contract::all(&SqliteStore::in_memory()).await;
}
