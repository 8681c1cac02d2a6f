//! Label and field selectors in Kubernetes syntax
//! (`k8s.io/apimachinery: pkg/labels/selector.go`, `pkg/fields/selector.go`).

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A parsed label and field selector pair; matches objects (JSON) by their metadata.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    labels: Vec<Requirement>,
    fields: Vec<FieldRequirement>,
}

impl Filter {
    /// Parses both selectors; `None` or empty strings select everything.
    pub(crate) fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self> {
        Ok(Self {
            labels: labels.map(parse_labels).transpose()?.unwrap_or_default(),
            fields: fields.map(parse_fields).transpose()?.unwrap_or_default(),
        })
    }

    /// True when the filter selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// True when only the label selector is needed to decide (field selectors only look at
    /// name and namespace, which callers may check cheaply without parsing).
    pub(crate) fn matches_key(&self, namespace: &str, name: &str) -> bool {
        self.fields.iter().all(|f| {
            let actual = match f.field {
                Field::Name => name,
                Field::Namespace => namespace,
            };
            (actual == f.value) == f.equal
        })
    }

    /// True when the filter has label requirements.
    pub(crate) fn has_label_requirements(&self) -> bool {
        !self.labels.is_empty()
    }

    /// True when the label map (`metadata.labels`, `None` when absent) matches the label
    /// selector.
    pub(crate) fn matches_label_map(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.labels.iter().all(|r| r.matches(labels))
    }

    /// True when the object's labels match the label selector.
    pub(crate) fn matches_labels(&self, object: &Value) -> bool {
        if self.labels.is_empty() {
            return true;
        }
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        self.labels.iter().all(|r| r.matches(labels))
    }

    /// True when the object matches both selectors.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let meta = |f: &str| {
            object
                .get("metadata")
                .and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        self.matches_key(meta("namespace"), meta("name")) && self.matches_labels(object)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => !value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values[0].parse::<i64>().ok(),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Greater,
    Less,
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1
            }
            b')' => {
                out.push(Token::Close);
                i += 1
            }
            b',' => {
                out.push(Token::Comma);
                i += 1
            }
            b'>' => {
                out.push(Token::Greater);
                i += 1
            }
            b'<' => {
                out.push(Token::Less);
                i += 1
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                out.push(Token::NotEquals);
                i += 2
            }
            b'!' => {
                out.push(Token::Not);
                i += 1
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                out.push(Token::DoubleEquals);
                i += 2
            }
            b'=' => {
                out.push(Token::Equals);
                i += 1
            }
            _ => {
                let start = i;
                while i < bytes.len() && !b" \t\n\r(),!=<>".contains(&bytes[i]) {
                    i += 1;
                }
                let word = &input[start..i];
                out.push(match word {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word.to_owned()),
                });
            }
        }
    }
    Ok(out)
}

fn selector_error(input: &str, detail: impl std::fmt::Display) -> Error {
    Error::InvalidSelector {
        message: format!("unable to parse requirement: found '{input}', error: {detail}"),
    }
}

fn parse_labels(input: &str) -> Result<Vec<Requirement>> {
    let tokens = tokenize(input)?;
    let mut reqs = Vec::new();
    let mut pos = 0;
    if tokens.is_empty() {
        return Ok(reqs);
    }
    loop {
        let negated = tokens.get(pos) == Some(&Token::Not);
        if negated {
            pos += 1;
        }
        let key = match tokens.get(pos) {
            Some(Token::Ident(k)) => k.clone(),
            other => {
                return Err(selector_error(
                    input,
                    format!("expected a label key, found {}", describe(other)),
                ));
            }
        };
        validate_key(input, &key)?;
        pos += 1;
        let at_end = matches!(tokens.get(pos), None | Some(Token::Comma));
        let req = if negated {
            if !at_end {
                return Err(selector_error(input, "'!' must be followed by a key alone"));
            }
            Requirement {
                key,
                op: Op::DoesNotExist,
                values: vec![],
            }
        } else if at_end {
            Requirement {
                key,
                op: Op::Exists,
                values: vec![],
            }
        } else {
            let op_token = tokens[pos].clone();
            pos += 1;
            match op_token {
                Token::Equals | Token::DoubleEquals | Token::NotEquals => {
                    let value = match tokens.get(pos) {
                        Some(Token::Ident(v)) => {
                            pos += 1;
                            v.clone()
                        }
                        None | Some(Token::Comma) => String::new(),
                        other => {
                            return Err(selector_error(
                                input,
                                format!("expected a value, found {}", describe(other)),
                            ));
                        }
                    };
                    validate_value(input, &value)?;
                    let op = if op_token == Token::NotEquals {
                        Op::NotEquals
                    } else {
                        Op::Equals
                    };
                    Requirement {
                        key,
                        op,
                        values: vec![value],
                    }
                }
                Token::Greater | Token::Less => {
                    let value = match tokens.get(pos) {
                        Some(Token::Ident(v)) if v.parse::<i64>().is_ok() => {
                            pos += 1;
                            v.clone()
                        }
                        other => {
                            return Err(selector_error(
                                input,
                                format!("expected an integer, found {}", describe(other)),
                            ));
                        }
                    };
                    let op = if op_token == Token::Greater {
                        Op::GreaterThan
                    } else {
                        Op::LessThan
                    };
                    Requirement {
                        key,
                        op,
                        values: vec![value],
                    }
                }
                Token::In | Token::NotIn => {
                    if tokens.get(pos) != Some(&Token::Open) {
                        return Err(selector_error(input, "expected '(' after set operator"));
                    }
                    pos += 1;
                    let mut values = Vec::new();
                    loop {
                        match tokens.get(pos) {
                            Some(Token::Ident(v)) => {
                                validate_value(input, v)?;
                                values.push(v.clone());
                                pos += 1;
                            }
                            Some(Token::Comma) | Some(Token::Close) => values.push(String::new()),
                            other => {
                                return Err(selector_error(
                                    input,
                                    format!("expected a value, found {}", describe(other)),
                                ));
                            }
                        }
                        match tokens.get(pos) {
                            Some(Token::Comma) => pos += 1,
                            Some(Token::Close) => {
                                pos += 1;
                                break;
                            }
                            other => {
                                return Err(selector_error(
                                    input,
                                    format!("expected ',' or ')', found {}", describe(other)),
                                ));
                            }
                        }
                    }
                    let op = if op_token == Token::In {
                        Op::In
                    } else {
                        Op::NotIn
                    };
                    Requirement { key, op, values }
                }
                other => {
                    return Err(selector_error(
                        input,
                        format!("expected an operator, found {}", describe(Some(&other))),
                    ));
                }
            }
        };
        reqs.push(req);
        match tokens.get(pos) {
            None => break,
            Some(Token::Comma) => {
                pos += 1;
                if pos >= tokens.len() {
                    return Err(selector_error(input, "expected a requirement after ','"));
                }
            }
            other => {
                return Err(selector_error(
                    input,
                    format!("expected ',', found {}", describe(other)),
                ));
            }
        }
    }
    Ok(reqs)
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "end of string".to_owned(),
        Some(Token::Ident(s)) => format!("'{s}'"),
        Some(t) => format!("{t:?}"),
    }
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// A label value or the name part of a key: at most 63 characters, alphanumerics, `-`, `_`,
/// `.`, starting and ending alphanumeric.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| is_name_char(c))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter()
                    .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        })
}

fn validate_key(input: &str, key: &str) -> Result<()> {
    let ok = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    };
    if ok {
        Ok(())
    } else {
        Err(selector_error(
            input,
            format!(
                "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ),
        ))
    }
}

fn validate_value(input: &str, value: &str) -> Result<()> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(selector_error(
            input,
            format!(
                "invalid label value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ),
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

#[derive(Clone, Debug)]
struct FieldRequirement {
    field: Field,
    equal: bool,
    value: String,
}

fn parse_fields(input: &str) -> Result<Vec<FieldRequirement>> {
    let mut out = Vec::new();
    if input.trim().is_empty() {
        return Ok(out);
    }
    for term in input.split(',') {
        let (lhs, equal, rhs) = if let Some((l, r)) = term.split_once("!=") {
            (l, false, r)
        } else if let Some((l, r)) = term.split_once("==") {
            (l, true, r)
        } else if let Some((l, r)) = term.split_once('=') {
            (l, true, r)
        } else {
            return Err(Error::InvalidFieldSelector {
                message: format!("invalid selector: '{input}'; can't understand '{term}'"),
            });
        };
        let field = match lhs.trim() {
            "metadata.name" => Field::Name,
            "metadata.namespace" => Field::Namespace,
            other => {
                return Err(Error::InvalidFieldSelector {
                    message: format!("field label not supported: {other}"),
                });
            }
        };
        out.push(FieldRequirement {
            field,
            equal,
            value: rhs.trim().to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    fn sel(s: &str) -> Filter {
        Filter::parse(Some(s), None).unwrap()
    }

    #[test]
    fn every_label_operator_matches_as_kubernetes_does() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let none = obj(json!({}));
        for (s, expect, expect_none) in [
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app!=db", true, true),
            ("app in (web, db)", true, false),
            ("app in (db)", false, false),
            ("app notin (db)", true, true),
            ("app notin (web)", false, true),
            ("app", true, false),
            ("!app", false, true),
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            ("app in (web),!missing", true, false),
            ("n>4", true, false),
            ("n<5", false, false),
            ("", true, true),
        ] {
            assert_eq!(sel(s).matches(&o), expect, "{s}");
            assert_eq!(sel(s).matches(&none), expect_none, "{s} on no labels");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for s in [
            "app=",
            "=x",
            "app in web",
            "app in (a",
            "app=a=b",
            "!app=x",
            "a,",
            "a b",
            "-bad=x",
            "app in (a b)",
            "n>x",
        ] {
            if s == "app=" {
                // an empty value is valid in Kubernetes
                assert!(Filter::parse(Some(s), None).is_ok());
                continue;
            }
            let err = Filter::parse(Some(s), None).unwrap_err();
            assert!(matches!(err, Error::InvalidSelector { .. }), "{s}: {err:?}");
        }
    }

    #[test]
    fn field_selectors_support_only_name_and_namespace() {
        let o = obj(json!({}));
        let f = |s: &str| Filter::parse(None, Some(s)).unwrap();
        assert!(f("metadata.name=a").matches(&o));
        assert!(f("metadata.name==a,metadata.namespace=ns").matches(&o));
        assert!(!f("metadata.name!=a").matches(&o));
        assert!(f("metadata.namespace!=other").matches(&o));
        let err = Filter::parse(None, Some("spec.url=x")).unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.url");
        assert!(matches!(
            Filter::parse(None, Some("metadata.name")).unwrap_err(),
            Error::InvalidFieldSelector { .. }
        ));
    }
}
