//! Conditional requests ("Best practices for using the REST API"): a list
//! page read before is asked for again with its `ETag` in `If-None-Match`;
//! GitHub answers `304 Not Modified` without a body, and does not count a
//! 304 against the installation's rate limit. The pages are remembered per
//! installation (each token sees its own) and URL.
//!
//! Bound: at most [`CAPACITY`] pages and [`BUDGET_BYTES`] of them (bodies,
//! paths, tags), the least recently used dropped first. A count alone
//! would not bound memory: one list of a busy pull request is 100
//! comments of up to 64 KiB each.

use std::sync::{Arc, Mutex};

use hashlink::LruCache;
use http::HeaderValue;

/// Pages remembered at most.
pub const CAPACITY: usize = 512;
/// Bytes remembered at most; a page larger than an eighth of it is not
/// remembered (it would push out many others for one conditional read).
pub const BUDGET_BYTES: usize = 16 << 20;

/// The last `200 OK` of one list page.
#[derive(Clone)]
pub struct Page {
    pub etag: HeaderValue,
    pub body: Arc<str>,
    /// Its `Link` header: the next page, which a 304 does not repeat.
    pub link: Option<HeaderValue>,
}

impl Page {
    /// What remembering it costs, roughly: its bytes and its key's.
    fn bytes(&self, path: &str) -> usize {
        path.len()
            + self.body.len()
            + self.etag.len()
            + self.link.as_ref().map_or(0, HeaderValue::len)
            + std::mem::size_of::<Self>()
    }
}

pub struct Remembered {
    pages: Mutex<Pages>,
}

struct Pages {
    lru: LruCache<(u64, String), Page>,
    capacity: usize,
    budget: usize,
    bytes: usize,
}

impl Remembered {
    pub fn new(capacity: usize, budget: usize) -> Self {
        Self {
            pages: Mutex::new(Pages {
                lru: LruCache::new_unbounded(),
                capacity,
                budget,
                bytes: 0,
            }),
        }
    }

    /// The page remembered for `path` (path and query) of `installation`.
    pub fn get(&self, installation: u64, path: &str) -> Option<Page> {
        self.lock()
            .lru
            .get(&(installation, path.to_string()))
            .cloned()
    }

    pub fn remember(&self, installation: u64, path: &str, page: Page) {
        let mut pages = self.lock();
        let cost = page.bytes(path);
        let key = (installation, path.to_string());
        if let Some(old) = pages.lru.remove(&key) {
            pages.bytes -= old.bytes(path);
        }
        if cost > pages.budget / 8 {
            return;
        }
        pages.bytes += cost;
        pages.lru.insert(key, page);
        while pages.lru.len() > pages.capacity || pages.bytes > pages.budget {
            let Some(((_, path), oldest)) = pages.lru.remove_lru() else {
                break;
            };
            pages.bytes -= oldest.bytes(&path);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(tag: &str) -> Page {
        Page {
            etag: HeaderValue::from_str(tag).unwrap(),
            body: Arc::from("[]"),
            link: None,
        }
    }

    #[test]
    fn pages_are_kept_per_installation_and_path() {
        let remembered = Remembered::new(CAPACITY, BUDGET_BYTES);
        remembered.remember(1, "/repos/a/b/issues/7/comments", page("\"one\""));
        assert_eq!(
            remembered
                .get(1, "/repos/a/b/issues/7/comments")
                .map(|p| p.etag),
            Some(HeaderValue::from_static("\"one\""))
        );
        assert!(remembered.get(2, "/repos/a/b/issues/7/comments").is_none());
        assert!(remembered.get(1, "/repos/a/b/issues/8/comments").is_none());
    }

    #[test]
    fn the_least_recently_used_page_goes_first() {
        let remembered = Remembered::new(3, BUDGET_BYTES);
        for n in 0..3 {
            remembered.remember(1, &format!("/p{n}"), page(&format!("\"{n}\"")));
        }
        // /p0 is used again, so /p1 is now the oldest.
        assert!(remembered.get(1, "/p0").is_some());
        remembered.remember(1, "/p3", page("\"3\""));
        assert!(remembered.get(1, "/p1").is_none());
        for kept in ["/p0", "/p2", "/p3"] {
            assert!(remembered.get(1, kept).is_some(), "{kept}");
        }
        assert_eq!(remembered.lock().lru.len(), 3);
    }

    fn sized(bytes: usize) -> Page {
        Page {
            body: Arc::from("x".repeat(bytes)),
            ..page("\"t\"")
        }
    }

    #[test]
    fn the_bytes_remembered_stay_within_the_budget() {
        let budget = 64 << 10;
        let remembered = Remembered::new(CAPACITY, budget);
        for n in 0..100 {
            remembered.remember(1, &format!("/p{n}"), sized(4 << 10));
            let pages = remembered.lock();
            assert!(pages.bytes <= budget, "{} bytes after {n}", pages.bytes);
        }
        // The newest are kept, the oldest went; the count matches the bytes.
        assert!(remembered.get(1, "/p99").is_some());
        assert!(remembered.get(1, "/p0").is_none());
        let pages = remembered.lock();
        let counted: usize = pages.lru.iter().map(|((_, p), page)| page.bytes(p)).sum();
        assert_eq!(counted, pages.bytes);
        assert!(
            pages.lru.len() < 16,
            "{} pages of 4 KiB in 64 KiB",
            pages.lru.len()
        );
    }

    #[test]
    fn a_page_replaced_or_too_large_is_not_counted_twice() {
        let remembered = Remembered::new(CAPACITY, 64 << 10);
        remembered.remember(1, "/p", sized(1 << 10));
        remembered.remember(1, "/p", sized(2 << 10));
        let one = remembered.lock().bytes;
        assert_eq!(one, sized(2 << 10).bytes("/p"));
        // Larger than an eighth of the budget: not remembered, and the
        // older page of the same path is not served in its place.
        remembered.remember(1, "/p", sized(9 << 10));
        assert!(remembered.get(1, "/p").is_none());
        assert_eq!(remembered.lock().bytes, 0);
    }
}
