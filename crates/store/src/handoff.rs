//! Deliveries handed straight from the transaction that makes them due to this process's
//! dispatcher, already claimed under a lease. Without it every fresh delivery cost a claim
//! query and a claim commit of its own on the single writer; with it the dispatcher starts the
//! delivery from memory. The lease in the row still covers a crash (another worker takes the
//! delivery over when it expires), and credits bound how many are in transit in memory: the
//! dispatcher grants them and gives one back for each delivery it has taken in hand.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use meetwire_core::delivery_key::DeliveryKeyCipher;
use meetwire_core::time::{now, Timestamp};
use tokio::sync::{mpsc, Notify};

use crate::model::ClaimedDelivery;
use crate::node::Node;

/// Where handed-off deliveries go, and how long their claims last.
struct Route {
    deliveries: mpsc::UnboundedSender<Vec<ClaimedDelivery>>,
    lease: chrono::Duration,
}

/// The store's side of the hand-off; closed (nothing pre-claimed) until a dispatcher opens it.
pub struct HandOff {
    /// Names the deliveries claimed here (their keys are made from their rows).
    keys: DeliveryKeyCipher,
    /// Whose claims these are.
    node: Node,
    credits: AtomicUsize,
    route: OnceLock<Route>,
    /// Set when the dispatcher stops: nothing more is pre-claimed.
    closed: AtomicBool,
    /// Pre-claims begun and not yet delivered or dropped (their transactions are on their way
    /// to the disk), and a wake-up for when none is left.
    outstanding: AtomicUsize,
    all_settled: Notify,
}

impl HandOff {
    pub(crate) fn new(keys: DeliveryKeyCipher, node: Node) -> Self {
        HandOff {
            keys,
            node,
            credits: AtomicUsize::default(),
            route: OnceLock::new(),
            closed: AtomicBool::default(),
            outstanding: AtomicUsize::default(),
            all_settled: Notify::new(),
        }
    }

    /// Opens the hand-off for a dispatcher that will hold at most `credits` handed-off
    /// deliveries at once, each claimed for `lease`. Only the first caller gets the receiver.
    pub fn open(
        &self,
        credits: usize,
        lease: chrono::Duration,
    ) -> Option<mpsc::UnboundedReceiver<Vec<ClaimedDelivery>>> {
        let (deliveries, receiver) = mpsc::unbounded_channel();
        self.route.set(Route { deliveries, lease }).ok()?;
        self.credits.store(credits, Ordering::Release);
        Some(receiver)
    }

    /// Stops pre-claiming (the dispatcher is stopping): deliveries made due from now on are left
    /// in the outbox for whoever claims next.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Waits until every pre-claim begun before `close` is delivered or dropped: a stopping
    /// dispatcher then finds all of them in its receiver and can give them back at once,
    /// instead of leaving ones still on their way to wait out their leases after a restart.
    pub async fn settled(&self) {
        loop {
            let all_settled = self.all_settled.notified();
            tokio::pin!(all_settled);
            all_settled.as_mut().enable();
            if self.outstanding.load(Ordering::Acquire) == 0 {
                return;
            }
            all_settled.await;
        }
    }

    /// Returns credits for deliveries the dispatcher has taken in hand.
    pub fn give_back(&self, credits: usize) {
        self.credits.fetch_add(credits, Ordering::AcqRel);
    }

    /// Starts collecting pre-claims for one transaction, if a dispatcher is listening.
    pub(crate) fn begin(self: &Arc<Self>) -> Option<PreClaims> {
        let route = self.route.get()?;
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        Some(PreClaims {
            keys: self.keys,
            handoff: self.clone(),
            token: self.node.claim_token(),
            lease_until: now() + route.lease,
            claimed: Vec::new(),
            reserved: 0,
        })
    }

    /// Takes one credit, if any is left and the hand-off is open.
    fn take_credit(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
            && self
                .credits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
                .is_ok()
    }
}

/// The deliveries one transaction claimed for the dispatcher, under one token and lease.
pub(crate) struct PreClaims {
    handoff: Arc<HandOff>,
    pub keys: DeliveryKeyCipher,
    pub token: String,
    pub lease_until: Timestamp,
    pub claimed: Vec<ClaimedDelivery>,
    reserved: usize,
}

impl PreClaims {
    /// Reserves room for one more pre-claimed delivery; false when the dispatcher is full. A
    /// reservation left unused comes back when the claims are delivered.
    pub fn reserve(&mut self) -> bool {
        let granted = self.handoff.take_credit();
        self.reserved += usize::from(granted);
        granted
    }

    /// Hands the deliveries of a durable transaction to the dispatcher. If it has gone, the
    /// rows stay claimed until their lease expires and are then taken over.
    pub fn deliver(mut self) {
        let claimed = std::mem::take(&mut self.claimed);
        // The delivered ones' credits come back from the dispatcher; the unused now.
        self.handoff.give_back(self.reserved - claimed.len());
        self.reserved = 0;
        if claimed.is_empty() {
            return;
        }
        if let Some(route) = self.handoff.route.get() {
            let _ = route.deliveries.send(claimed);
        }
    }

    /// Delivers the claims if their transaction became durable, else abandons them.
    pub fn settle(self, durable: &Result<(), String>) {
        match durable {
            Ok(()) => self.deliver(),
            Err(_) => self.abandon(),
        }
    }

    /// Gives back the credits of a transaction that did not commit or did not become durable
    /// (what dropping the claims does).
    pub fn abandon(self) {}
}

/// Claims dropped on any path that neither delivered nor abandoned them — a failed or
/// panicked writer task — give their credits back, so the dispatcher's budget never shrinks.
impl Drop for PreClaims {
    fn drop(&mut self) {
        self.handoff.give_back(self.reserved);
        if self.handoff.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.handoff.all_settled.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff() -> Arc<HandOff> {
        Arc::new(HandOff::new(DeliveryKeyCipher::new([9; 16]), Node::new()))
    }

    fn claimed(seq: i64) -> ClaimedDelivery {
        ClaimedDelivery {
            seq,
            claim_token: "t".into(),
            idempotency_key: format!("k{seq}"),
            project_id: "p".into(),
            subscription_id: "s".into(),
            url: None,
            subscription_active: true,
            body: "{}".into(),
            attempts: 0,
            max_attempts: 4,
            lease_until: now(),
        }
    }

    #[test]
    fn closed_until_a_dispatcher_opens_it() {
        let handoff = handoff();
        assert!(handoff.begin().is_none());
        assert!(handoff.open(2, chrono::Duration::seconds(5)).is_some());
        assert!(handoff.open(2, chrono::Duration::seconds(5)).is_none());
        assert!(handoff.begin().is_some());
    }

    #[test]
    fn credits_bound_what_is_in_transit_and_come_back() {
        let handoff = handoff();
        let mut rx = handoff.open(2, chrono::Duration::seconds(5)).unwrap();
        let mut claims = handoff.begin().unwrap();
        assert!(claims.reserve());
        assert!(claims.reserve());
        assert!(!claims.reserve(), "only two credits");
        claims.claimed.push(claimed(1));
        claims.deliver();
        // One reservation went unused and came back at once; the delivered one is out.
        let mut next = handoff.begin().unwrap();
        assert!(next.reserve());
        assert!(!next.reserve());
        next.abandon();
        assert_eq!(rx.try_recv().unwrap().len(), 1);
        handoff.give_back(1);
        let mut again = handoff.begin().unwrap();
        assert!(again.reserve() && again.reserve());
    }

    #[test]
    fn claims_dropped_unsettled_give_their_credits_back() {
        let handoff = handoff();
        let _rx = handoff.open(2, chrono::Duration::seconds(5)).unwrap();
        let mut lost = handoff.begin().unwrap();
        assert!(lost.reserve() && lost.reserve());
        lost.claimed.push(claimed(1));
        drop(lost);
        let mut next = handoff.begin().unwrap();
        assert!(next.reserve() && next.reserve(), "both credits came back");
    }

    #[test]
    fn a_closed_hand_off_pre_claims_nothing_more() {
        let handoff = handoff();
        let _rx = handoff.open(2, chrono::Duration::seconds(5)).unwrap();
        let mut begun = handoff.begin().unwrap();
        handoff.close();
        assert!(
            handoff.begin().is_none(),
            "closed: new deliveries stay in the outbox"
        );
        assert!(!begun.reserve(), "nor are more taken by one begun before");
        handoff.give_back(1);
        assert!(!begun.reserve(), "credits coming back do not reopen it");
    }

    #[tokio::test]
    async fn closing_waits_for_the_pre_claims_on_their_way() {
        let handoff = handoff();
        let mut rx = handoff.open(2, chrono::Duration::seconds(5)).unwrap();
        let mut on_its_way = handoff.begin().unwrap();
        assert!(on_its_way.reserve());
        on_its_way.claimed.push(claimed(7));
        let idle = handoff.begin().unwrap();
        handoff.close();
        let settled = tokio::spawn({
            let handoff = handoff.clone();
            async move { handoff.settled().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !settled.is_finished(),
            "two pre-claims are still on their way"
        );
        idle.abandon();
        on_its_way.deliver();
        settled.await.unwrap();
        assert_eq!(
            rx.try_recv().unwrap()[0].seq,
            7,
            "it reached the receiver first"
        );
    }
}
