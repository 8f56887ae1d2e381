//! The management API's users routes: list, add or re-password, delete
//! subscribers (`/api/v1/users…`), under the same rules as `sipwake user`
//! (`crate::subscribers`): the domain must be one the node serves, and only
//! the digest HA1 hashes are stored, never the password.
//!
//! A change is handed to the running node at once (its subscriber table
//! is replaced from the store); other nodes of a cluster, and this one if
//! that failed, pick it up through the driver's subscriber reload.
//! Owns no location state and no routing.

use crate::management::MgmtState;
use crate::subscribers::{check_domain, split, with_password};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct UserView {
    /// user@domain
    pub user: String,
    pub created_at_ms: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct UserList {
    pub users: Vec<UserView>,
}

#[derive(Deserialize)]
pub struct Password {
    pub password: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct UserSaved {
    pub user: String,
    /// `true`: added; `false`: its password changed.
    pub created: bool,
}

fn fail(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

/// Runs a store call off the async threads; a failure is a 500 naming it.
async fn blocking<T: Send + 'static>(
    st: &MgmtState,
    what: &'static str,
    f: impl FnOnce(&dyn location_store::Store) -> location_store::Result<T> + Send + 'static,
) -> Result<T, Box<Response>> {
    let store = st.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Box::new(fail(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}")))),
        Err(_) => Err(Box::new(fail(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: the store task failed")))),
    }
}

/// Hands the stored subscribers to the node now.
async fn refresh_node(st: &MgmtState) {
    if let Ok(list) = blocking(st, "reloading the subscribers", |s| s.subscribers()).await {
        st.driver.with_node(|n, _| n.set_subscribers(crate::store_map::secrets(list)));
    }
}

pub async fn list(State(st): State<MgmtState>) -> Response {
    let mut list = match blocking(&st, "loading the subscribers", |s| s.subscribers()).await {
        Ok(l) => l,
        Err(r) => return *r,
    };
    list.sort_by(|a, b| (&a.domain, &a.user).cmp(&(&b.domain, &b.user)));
    let users =
        list.into_iter().map(|s| UserView { user: format!("{}@{}", s.user, s.domain), created_at_ms: s.created_at_ms });
    Json(UserList { users: users.collect() }).into_response()
}

pub async fn put(
    State(st): State<MgmtState>,
    Path(aor): Path<String>,
    body: Result<Json<Password>, JsonRejection>,
) -> Response {
    let (user, domain) = match split(&aor) {
        Ok(x) => x,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let served = st.driver.read(|n| n.domains().to_vec());
    if let Err(e) = check_domain(&served, &domain) {
        return fail(StatusCode::BAD_REQUEST, e);
    }
    let password = match body {
        Ok(Json(p)) if !p.password.is_empty() => p.password,
        Ok(_) => return fail(StatusCode::BAD_REQUEST, "empty password"),
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON {{\"password\": \"…\"}}: {}", e.body_text()),
            );
        }
    };
    let s = with_password(&user, &domain, &password, crate::server::now_ms());
    let (u, d) = (user.clone(), domain.clone());
    let existed = match blocking(&st, "saving the subscriber", move |store| {
        let existed = store.get_subscriber(&u, &d)?.is_some();
        store.put_subscriber(&s)?;
        Ok(existed)
    })
    .await
    {
        Ok(e) => e,
        Err(r) => return *r,
    };
    refresh_node(&st).await;
    let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
    (code, Json(UserSaved { user: format!("{user}@{domain}"), created: !existed })).into_response()
}

pub async fn delete(State(st): State<MgmtState>, Path(aor): Path<String>) -> Response {
    let (user, domain) = match split(&aor) {
        Ok(x) => x,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let (u, d) = (user.clone(), domain.clone());
    match blocking(&st, "deleting the subscriber", move |s| s.delete_subscriber(&u, &d)).await {
        Ok(true) => {
            refresh_node(&st).await;
            Json(crate::management::Removed { removed: 1 }).into_response()
        }
        Ok(false) => fail(StatusCode::NOT_FOUND, format!("no user {user}@{domain}")),
        Err(r) => *r,
    }
}
