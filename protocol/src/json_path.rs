//! The JSON path an oracle endpoint's `resultPath` names: the config checks it, the oracle
//! applies it to the endpoint's answer.

use std::fmt;

use serde_json::Value;

/// A JSON path of the small, common kind: `$`, then `.name`, `[index]` or `['name']` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Why a result path is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonPathError(String);

impl JsonPath {
    /// Parses `$`, `$.a.b`, `$.list[0].x`, `$['odd key']`.
    pub fn parse(text: &str) -> Result<Self, JsonPathError> {
        let err = |m: &str| Err(JsonPathError(m.to_owned()));
        let Some(mut rest) = text.strip_prefix('$') else {
            return err("must start with $");
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return err("empty name after '.'");
                }
                steps.push(Step::Key(r[..end].to_owned()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return err("unclosed '['");
                };
                let inner = &r[..end];
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                match (quoted, inner.parse::<usize>()) {
                    (Some(name), _) => steps.push(Step::Key(name.to_owned())),
                    (None, Ok(i)) => steps.push(Step::Index(i)),
                    (None, Err(_)) => return err("[...] holds an index or a quoted name"),
                }
                rest = &r[end + 1..];
            } else {
                return err("expected '.' or '[' after a step");
            }
        }
        Ok(Self {
            steps,
            text: text.to_owned(),
        })
    }

    /// The value at this path, if the document has one.
    pub fn select<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.steps.iter().try_fold(doc, |v, step| match step {
            Step::Key(k) => v.as_object()?.get(k),
            Step::Index(i) => v.as_array()?.get(*i),
        })
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_nested_values() {
        let doc = json!({"cost": 12, "a": {"list": [1, {"x": "y"}]}, "odd key": true});
        let at = |p: &str| JsonPath::parse(p).unwrap().select(&doc).cloned();
        assert_eq!(at("$"), Some(doc.clone()));
        assert_eq!(at("$.cost"), Some(json!(12)));
        assert_eq!(at("$.a.list[1].x"), Some(json!("y")));
        assert_eq!(at("$['odd key']"), Some(json!(true)));
        assert_eq!(at("$.missing"), None);
        assert_eq!(at("$.a.list[5]"), None);
        for bad in ["cost", "$.", "$[x]", "$[0", "$x", "$..a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
