//! Condition and comparison semantics, as DynamoDB defines them, for the
//! backend that evaluates conditions itself (the embedded database).

use std::cmp::Ordering;

use super::{AttributeValue, Condition, Item};

/// Whether `condition` holds for the item stored under the key (if any).
pub fn holds(condition: &Condition, stored: Option<&Item>) -> bool {
    let attribute =
        |name: &str| stored.and_then(|item| item.iter().find(|(n, _)| n == name).map(|(_, v)| v));
    match condition {
        Condition::None => true,
        Condition::ItemAbsent => stored.is_none(),
        Condition::ItemPresent => stored.is_some(),
        Condition::Equals(check) => attribute(&check.name)
            .is_some_and(|v| compare(v, &check.value) == Some(Ordering::Equal)),
        Condition::AbsentOrAtMost(check) => {
            stored.is_none()
                || attribute(&check.name).is_some_and(|v| {
                    matches!(
                        compare(v, &check.value),
                        Some(Ordering::Less | Ordering::Equal)
                    )
                })
        }
    }
}

/// DynamoDB's ordering: strings by bytes, numbers by value, binaries by bytes;
/// other types only compare for equality; different types never compare.
pub fn compare(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    use AttributeValue as V;
    match (a, b) {
        (V::S(a), V::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (V::N(a), V::N(b)) => compare_numbers(a, b),
        (V::B(a), V::B(b)) => Some(a.cmp(b)),
        (V::Bool(a), V::Bool(b)) if a == b => Some(Ordering::Equal),
        (V::Null, V::Null) => Some(Ordering::Equal),
        (V::Ss(a), V::Ss(b)) | (V::Ns(a), V::Ns(b)) if sorted(a) == sorted(b) => {
            Some(Ordering::Equal)
        }
        (V::Json(a), V::Json(b)) if a == b => Some(Ordering::Equal),
        _ => None,
    }
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v
}

/// Integers compare exactly; anything else as f64 (enough for timestamps
/// and counters, the numbers envmgr stores).
fn compare_numbers(a: &str, b: &str) -> Option<Ordering> {
    if let (Ok(a), Ok(b)) = (a.trim().parse::<i128>(), b.trim().parse::<i128>()) {
        return Some(a.cmp(&b));
    }
    let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
    a.partial_cmp(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::dynamodb::AttributeCheck;

    fn item(version: &str) -> Item {
        vec![("v".to_string(), AttributeValue::S(version.to_string()))]
    }

    fn at_most(version: &str) -> Condition {
        Condition::AbsentOrAtMost(AttributeCheck {
            name: "v".to_string(),
            value: AttributeValue::S(version.to_string()),
        })
    }

    #[test]
    fn absent_or_at_most() {
        assert!(holds(&at_most("b"), None));
        assert!(holds(&at_most("b"), Some(&item("a"))));
        assert!(holds(&at_most("b"), Some(&item("b"))));
        assert!(!holds(&at_most("b"), Some(&item("c"))));
        assert!(!holds(&at_most("b"), Some(&vec![])));
    }

    #[test]
    fn numbers_compare_by_value() {
        let n = |s: &str| AttributeValue::N(s.to_string());
        assert_eq!(compare(&n("9"), &n("10")), Some(Ordering::Less));
        assert_eq!(compare(&n("1.5"), &n("1.50")), Some(Ordering::Equal));
        assert_eq!(compare(&n("1"), &AttributeValue::S("1".into())), None);
    }
}
