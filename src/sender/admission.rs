//! Who gets in, the policy (`accept.rs` asks it): the checks on every new connection (`--allow`,
//! a bound on connections), the checks on viewers (wrong-code lockouts per address and a budget
//! of wrong codes all addresses share, `--max-viewers` seats, counted for every kind of viewer),
//! why a receiver is refused, and refusals logged once a minute per address and kind, so a
//! flood of connections cannot flood the log.

use crate::lock;
use crate::wire::protocol::RefusalReason;
use crate::wire::secure;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The same refusal of the same address is logged at most once in this long.
const COMPLAINT_PERIOD: Duration = Duration::from_secs(60);
/// Addresses whose refusals are remembered at once; bounds the memory a flood can take.
const MAX_REMEMBERED_COMPLAINTS: usize = 1024;
/// Connections served at once beyond `--max-viewers`: a page loading its files, a login, a
/// snapshot, a peer still to say what it is.
pub const SPARE_CONNECTIONS: usize = 8;

/// What the sender checks new connections against.
pub(super) struct Admission {
    allow: Option<IpAddr>,
    max_viewers: usize,
    /// Viewers of every kind now.
    seats: AtomicUsize,
    /// Connections being served now.
    connections: AtomicUsize,
    wrong_codes: Mutex<WrongCodes>,
    complaints: Mutex<Complaints>,
}

/// One of `--max-viewers` seats, given back when dropped.
pub(super) struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes one of `limit` places counted by `count`, if one is free.
fn hold(count: &AtomicUsize, limit: usize) -> Option<Held<'_>> {
    // Made only when taken: a `Held` dropped unused would give back a place it never had.
    take_place(count, limit).then(|| Held(count))
}

/// Counts one more of `limit` places in `count`, if one is free; the caller gives it back.
fn take_place(count: &AtomicUsize, limit: usize) -> bool {
    count
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl Admission {
    pub(super) fn new(allow: Option<IpAddr>, max_viewers: usize) -> Self {
        Admission {
            allow,
            max_viewers,
            seats: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            wrong_codes: Mutex::new(WrongCodes::new(Instant::now())),
            complaints: Mutex::default(),
        }
    }

    pub(super) fn max_viewers(&self) -> usize {
        self.max_viewers
    }

    /// A viewer's seat, if fewer than `--max-viewers` watch.
    pub(super) fn seat(&self) -> Option<Held<'_>> {
        hold(&self.seats, self.max_viewers)
    }

    /// How long `peer` must still wait before trying a pairing code, if at all: after its own
    /// wrong codes, or everyone's.
    pub(super) fn lockout(&self, peer: SocketAddr) -> Option<Duration> {
        self.barred(peer).map(Barred::wait)
    }

    fn barred(&self, peer: SocketAddr) -> Option<Barred> {
        lock(&self.wrong_codes).barred(canonical(peer.ip()), Instant::now())
    }

    /// Counts a wrong pairing code from `peer`; returns how many in a row.
    pub(super) fn wrong_code(&self, peer: SocketAddr) -> u32 {
        lock(&self.wrong_codes).failed(canonical(peer.ip()), Instant::now())
    }

    /// Logs a refusal, unless the same complaint about the same address was logged in the last
    /// [`COMPLAINT_PERIOD`]: then it is only counted, and the next message says how many.
    pub(super) fn complain(
        &self,
        peer: SocketAddr,
        about: &'static str,
        message: impl FnOnce() -> String,
    ) {
        let unsaid = lock(&self.complaints).note(canonical(peer.ip()), about, Instant::now());
        match unsaid {
            Some(0) => log::warn!("{}", message()),
            Some(n) => log::warn!(
                "{} (and {n} more like it since the last such message)",
                message()
            ),
            None => {}
        }
    }

    /// Whether a connection from `peer` may be served, taking one of the connection places
    /// ([`Admission::connection_done`] gives it back); logs why not.
    pub(super) fn admits(&self, peer: SocketAddr) -> bool {
        if let Some(allowed) = self.allow {
            if canonical(peer.ip()) != canonical(allowed) {
                self.complain(peer, "--allow", || {
                    format!("refused connection from {peer}: only {allowed} may connect (--allow)")
                });
                return false;
            }
        }
        let admitted = take_place(&self.connections, self.max_viewers + SPARE_CONNECTIONS);
        if !admitted {
            self.complain(peer, "connections", || {
                format!(
                    "refused connection from {peer}: already serving {} connections",
                    self.max_viewers + SPARE_CONNECTIONS
                )
            });
        }
        admitted
    }

    /// Gives back a connection's place.
    pub(super) fn connection_done(&self) {
        self.connections.fetch_sub(1, Ordering::SeqCst);
    }

    /// A seat for a receiver from `peer`, unless it is locked out or the sender is full: then
    /// why not, to tell it; logs it too.
    pub(super) fn seat_for_receiver(&self, peer: SocketAddr) -> Result<Held<'_>, RefusalReason> {
        if let Some(barred) = self.barred(peer) {
            let (about, whose) = match barred {
                Barred::LockedOut(_) => ("pairing lockout", "too many wrong pairing codes"),
                Barred::Busy(_) => (
                    "pairing budget",
                    "too many wrong pairing codes from all addresses lately",
                ),
            };
            self.complain(peer, about, || {
                format!(
                    "refused connection from {peer}: {whose}; next try allowed in {} s",
                    whole_seconds(barred.wait())
                )
            });
            return Err(barred.reason());
        }
        self.seat().ok_or_else(|| {
            self.complain(peer, "--max-viewers", || {
                format!(
                    "refused connection from {peer}: already serving {} viewers (--max-viewers)",
                    self.max_viewers
                )
            });
            let seats = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            RefusalReason::Full {
                viewers: seats(self.seats.load(Ordering::SeqCst)),
                max: seats(self.max_viewers),
            }
        })
    }
}

/// The sender's memory of recent complaints, per address and kind: a flood of connections
/// becomes one log line per period, with a count.
#[derive(Default)]
struct Complaints {
    /// When each was last logged, and how many have been left unsaid since.
    seen: HashMap<(IpAddr, &'static str), (Instant, u64)>,
}

impl Complaints {
    /// Returns how many were left unsaid when this one should be logged, or `None` to stay quiet.
    fn note(&mut self, ip: IpAddr, about: &'static str, now: Instant) -> Option<u64> {
        // Many addresses: forget the ones that have been quiet for a period (bounded memory).
        if self.seen.len() >= MAX_REMEMBERED_COMPLAINTS {
            self.seen
                .retain(|_, (logged, _)| now.duration_since(*logged) < COMPLAINT_PERIOD);
        }
        let full = self.seen.len() >= MAX_REMEMBERED_COMPLAINTS;
        match self.seen.get_mut(&(ip, about)) {
            Some((logged, unsaid)) if now.duration_since(*logged) < COMPLAINT_PERIOD => {
                *unsaid += 1;
                None
            }
            Some((logged, unsaid)) => {
                *logged = now;
                Some(std::mem::take(unsaid))
            }
            None if !full => {
                self.seen.insert((ip, about), (now, 0));
                Some(0)
            }
            // Still full of fresh complaints: a flood from many addresses; stay quiet.
            None => None,
        }
    }
}

/// A wait as whole seconds to tell a peer, rounded up so that it is not told to come back
/// too early.
fn whole_seconds(wait: Duration) -> u32 {
    u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).unwrap_or(u32::MAX)
}

/// IPv4 peers of a dual-stack listener arrive as IPv4-mapped IPv6 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why nobody, or this address, may try a pairing code now, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Barred {
    /// This address gave wrong codes ([`secure::lockout_after`]).
    LockedOut(Duration),
    /// Too many wrong codes from all addresses together lately ([`GuessBudget`]).
    Busy(Duration),
}

impl Barred {
    fn wait(self) -> Duration {
        match self {
            Barred::LockedOut(wait) | Barred::Busy(wait) => wait,
        }
    }

    /// What a receiver is told.
    fn reason(self) -> RefusalReason {
        let wait_s = whole_seconds(self.wait());
        match self {
            Barred::LockedOut(_) => RefusalReason::LockedOut { wait_s },
            Barred::Busy(_) => RefusalReason::Busy { wait_s },
        }
    }
}

/// Addresses that gave wrong pairing codes: each failure in a row locks the address out for
/// [`secure::lockout_after`] that many. Each also spends the budget all addresses share.
struct WrongCodes {
    failures: HashMap<IpAddr, (u32, Instant)>,
    budget: GuessBudget,
}

impl WrongCodes {
    fn new(now: Instant) -> Self {
        WrongCodes {
            failures: HashMap::new(),
            budget: GuessBudget::new(now),
        }
    }

    /// Counts a failure from `ip`; returns how many in a row.
    fn failed(&mut self, ip: IpAddr, now: Instant) -> u32 {
        self.budget.spend(now);
        if self.failures.len() >= MAX_REMEMBERED_COMPLAINTS {
            self.failures
                .retain(|_, (_, last)| now.duration_since(*last) < secure::MAX_LOCKOUT);
        }
        let entry = self.failures.entry(ip).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
        entry.0
    }

    /// Why `ip` may not try a code now, if it may not: its own lockout first, as the one it can
    /// do something about.
    fn barred(&mut self, ip: IpAddr, now: Instant) -> Option<Barred> {
        let lockout = self.failures.get(&ip).and_then(|(failures, last)| {
            (*last + secure::lockout_after(*failures))
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
        });
        lockout
            .map(Barred::LockedOut)
            .or_else(|| self.budget.wait(now).map(Barred::Busy))
    }
}

/// Wrong pairing codes allowed in a burst from all addresses together...
const BUDGET_BURST: f64 = 5.0;
/// ...and after it, at most this many a minute. Per-address lockouts alone let 1,000 addresses
/// guess 1,000 times as fast; this caps everyone together at a rate that makes guessing a code
/// take decades (README, Security), while a person who mistypes is never near it.
const BUDGET_PER_MINUTE: f64 = 10.0;

/// The budget of failed pairings shared by all addresses: a token bucket of
/// [`BUDGET_BURST`] refilled at [`BUDGET_PER_MINUTE`]. A failure spends a token; with less than
/// one left, nobody may try until it refills. Pairings already under way when it ran out may
/// still fail and put it in debt, which is waited off the same way, so the rate holds.
struct GuessBudget {
    tokens: f64,
    at: Instant,
}

impl GuessBudget {
    fn new(now: Instant) -> Self {
        GuessBudget {
            tokens: BUDGET_BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned =
            now.saturating_duration_since(self.at).as_secs_f64() * BUDGET_PER_MINUTE / 60.0;
        self.tokens = (self.tokens + earned).min(BUDGET_BURST);
        self.at = self.at.max(now);
    }

    fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// How long until anyone may try again, if the budget is spent.
    fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        (self.tokens < 1.0)
            .then(|| Duration::from_secs_f64((1.0 - self.tokens) * 60.0 / BUDGET_PER_MINUTE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_complaint_is_logged_once_per_period_with_a_count() {
        let mut complaints = Complaints::default();
        let ip: IpAddr = [192, 0, 2, 7].into();
        let other: IpAddr = [192, 0, 2, 8].into();
        let start = Instant::now();
        assert_eq!(complaints.note(ip, "--allow", start), Some(0));
        for _ in 0..300 {
            assert_eq!(complaints.note(ip, "--allow", start), None);
        }
        // Another address, or another complaint, is news.
        assert_eq!(complaints.note(other, "--allow", start), Some(0));
        assert_eq!(complaints.note(ip, "handshake", start), Some(0));
        let later = start + COMPLAINT_PERIOD;
        assert_eq!(complaints.note(ip, "--allow", later), Some(300));
        assert_eq!(complaints.note(ip, "--allow", later), None);
    }

    #[test]
    fn wrong_codes_from_many_addresses_share_one_budget() {
        let start = Instant::now();
        let mut wrong = WrongCodes::new(start);
        let ip = |n: u8| IpAddr::from([127, 0, 0, n]);
        // A burst of five, each from a new address: each locked out alone, nobody else.
        for n in 1..=5 {
            assert_eq!(wrong.barred(ip(n), start), None, "try {n}");
            wrong.failed(ip(n), start);
            assert!(matches!(
                wrong.barred(ip(n), start),
                Some(Barred::LockedOut(_))
            ));
        }
        // Then nobody, for one refill: 6 s at 10 a minute.
        assert_eq!(
            wrong.barred(ip(6), start),
            Some(Barred::Busy(Duration::from_secs(6)))
        );
        assert_eq!(
            wrong.barred(ip(6), start).map(Barred::reason),
            Some(RefusalReason::Busy { wait_s: 6 })
        );
        let later = start + Duration::from_secs(6);
        assert_eq!(wrong.barred(ip(6), later), None);
        // Over ten minutes from a thousand addresses: the burst plus ten a minute, no more.
        let mut failed = 0;
        for tick in 0..6000u32 {
            let now = later + Duration::from_millis(100) * tick;
            let from = ip((tick % 250) as u8);
            if wrong.barred(from, now).is_none() {
                wrong.failed(from, now);
                failed += 1;
            }
        }
        assert!(
            (100..=101).contains(&failed),
            "{failed} guesses in 10 minutes"
        );
    }

    #[test]
    fn complaints_from_a_flood_of_addresses_take_bounded_memory() {
        let mut complaints = Complaints::default();
        let now = Instant::now();
        for n in 0..5000u32 {
            complaints.note(IpAddr::from(n.to_be_bytes()), "handshake", now);
        }
        assert_eq!(complaints.seen.len(), MAX_REMEMBERED_COMPLAINTS);
    }
}
