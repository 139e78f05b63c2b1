//! This process as the database knows it. Every claim it takes carries its id, so that when
//! it dies another process can tell its claims apart and take them over at once.

use std::sync::Arc;

use meetwire_core::ids::{new_id, IdKind};

#[derive(Debug, Clone)]
pub struct Node(Arc<str>);

impl Node {
    pub(crate) fn new() -> Self {
        Node(new_id(IdKind::Node).into())
    }

    pub fn id(&self) -> &str {
        &self.0
    }

    /// A fresh claim token of this node: its id, a dot, and a random part.
    pub fn claim_token(&self) -> String {
        format!("{}.{}", self.0, uuid::Uuid::new_v4())
    }
}
