//! The Rust types behind the WIT's resources: a sealed value's label and
//! plaintext, and the host's side of every future the guest can start.
//! Here beside the bindings (which name them in `with:`), below every
//! module that implements the imports.

use super::Error;
use super::envmgr::environments::dynamodb::{Item, Page, WriteError};
use super::envmgr::environments::runtime::Created;
use super::pending::Pending;
use crate::redact::Secret;

/// A call's result, as the guest sees it.
type CapResult<T> = Result<T, Error>;

/// What a guest's `sealed-value` handle points at.
pub struct SealedValue {
    pub label: String,
    pub(crate) secret: Secret,
}

/// A token being minted or a secret being decrypted for the guest: its
/// label and plaintext, sealed when the guest takes it.
pub type FutureSealedValue = Pending<CapResult<(String, Secret)>>;

/// A `get` the guest started.
pub type FutureItem = Pending<CapResult<Option<Item>>>;
/// A `query` the guest started.
pub type FuturePage = Pending<CapResult<Page>>;
/// A `transact-write` the guest started.
pub type FutureWrite = Pending<Result<(), WriteError>>;

/// A `create` the guest started.
pub type FutureCreated = Pending<CapResult<Created>>;
