//! Conditional requests ("Best practices for using the REST API"): a list
//! page read before is asked for again with its `ETag` in `If-None-Match`;
//! GitHub answers `304 Not Modified` without a body, and does not count a
//! 304 against the installation's rate limit. The pages are remembered per
//! installation (each token sees its own) and URL, a bounded number of them.

use std::sync::{Arc, Mutex};

use hashlink::LruCache;
use http::HeaderValue;

/// Pages remembered at most; the least recently used is dropped first.
pub const CAPACITY: usize = 512;

/// The last `200 OK` of one list page.
#[derive(Clone)]
pub struct Page {
    pub etag: HeaderValue,
    pub body: Arc<str>,
    /// Its `Link` header: the next page, which a 304 does not repeat.
    pub link: Option<HeaderValue>,
}

pub struct Remembered {
    pages: Mutex<LruCache<(u64, String), Page>>,
}

impl Remembered {
    pub fn new(capacity: usize) -> Self {
        Self {
            pages: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The page remembered for `path` (path and query) of `installation`.
    pub fn get(&self, installation: u64, path: &str) -> Option<Page> {
        self.lock().get(&(installation, path.to_string())).cloned()
    }

    pub fn remember(&self, installation: u64, path: &str, page: Page) {
        self.lock().insert((installation, path.to_string()), page);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<(u64, String), Page>> {
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
        let remembered = Remembered::new(CAPACITY);
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
        let remembered = Remembered::new(3);
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
        assert_eq!(remembered.lock().len(), 3);
    }
}
