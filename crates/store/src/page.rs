//! Cursor pagination shared by every list: fetch one row more than asked to know whether a
//! further page exists, and walk backwards for the "previous" link.

use crate::model::{Cursor, Page, PageRequest};

/// The SQL pieces of a paginated query over `seq`, for a list whose natural order is `newest_first`
/// or oldest first: `(condition on seq, order)`.
pub(crate) fn seq_bounds(page: &PageRequest, newest_first: bool) -> (&'static str, &'static str) {
    let backwards = page.after.is_some_and(|c| c.backwards);
    let descending = newest_first != backwards;
    if descending {
        ("seq < ?", "seq DESC")
    } else {
        ("seq > ?", "seq ASC")
    }
}

/// The value to compare `seq` against: the cursor, or the end of the list to start from.
pub(crate) fn seq_start(page: &PageRequest, newest_first: bool) -> i64 {
    match page.after {
        Some(cursor) => cursor.seq,
        None if newest_first => i64::MAX,
        None => i64::MIN,
    }
}

/// Turns `limit + 1` fetched rows into a page in list order with its neighbours' cursors.
pub(crate) fn finish<T>(mut rows: Vec<T>, page: &PageRequest, seq: impl Fn(&T) -> i64) -> Page<T> {
    let limit = page.limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let backwards = page.after.is_some_and(|c| c.backwards);
    if backwards {
        rows.reverse();
    }
    let first = rows.first().map(&seq);
    let last = rows.last().map(&seq);
    let forward = |s: Option<i64>| {
        s.map(|seq| Cursor {
            seq,
            backwards: false,
        })
    };
    let back = |s: Option<i64>| {
        s.map(|seq| Cursor {
            seq,
            backwards: true,
        })
    };
    let (next, previous) = match (backwards, page.after.is_some()) {
        (true, _) => (forward(last), if more { back(first) } else { None }),
        (false, true) => (if more { forward(last) } else { None }, back(first)),
        (false, false) => (if more { forward(last) } else { None }, None),
    };
    Page {
        items: rows,
        next,
        previous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(all: &[i64], page: PageRequest, newest_first: bool) -> Page<i64> {
        let (cond, _) = seq_bounds(&page, newest_first);
        let start = seq_start(&page, newest_first);
        let mut rows: Vec<i64> = all
            .iter()
            .copied()
            .filter(|s| {
                if cond.contains('<') {
                    *s < start
                } else {
                    *s > start
                }
            })
            .collect();
        if cond.contains('<') {
            rows.sort_by(|a, b| b.cmp(a));
        } else {
            rows.sort();
        }
        rows.truncate(page.limit as usize + 1);
        finish(rows, &page, |s| *s)
    }

    #[test]
    fn forward_and_back_cover_every_row_once() {
        let all: Vec<i64> = (1..=7).collect();
        for newest_first in [false, true] {
            let mut seen = vec![];
            let mut page = PageRequest {
                after: None,
                limit: 3,
            };
            let mut pages = vec![];
            loop {
                let p = walk(&all, page, newest_first);
                seen.extend(p.items.clone());
                pages.push(p.clone());
                match p.next {
                    Some(c) => {
                        page = PageRequest {
                            after: Some(c),
                            limit: 3,
                        }
                    }
                    None => break,
                }
            }
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(sorted, all);
            assert_eq!(pages.len(), 3);
            assert!(pages[0].previous.is_none());
            let back = walk(
                &all,
                PageRequest {
                    after: pages[2].previous,
                    limit: 3,
                },
                newest_first,
            );
            assert_eq!(back.items, pages[1].items);
            let first = walk(
                &all,
                PageRequest {
                    after: back.previous,
                    limit: 3,
                },
                newest_first,
            );
            assert_eq!(first.items, pages[0].items);
            assert!(first.previous.is_none());
        }
    }
}
