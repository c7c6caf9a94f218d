//! Reads the YAML that the deploy files are written in (docker compose, Kubernetes and Istio
//! manifests) into serde_json values, so the deploy tests can check them without a YAML
//! dependency in the harness. It knows block mappings and sequences, plain and quoted scalars,
//! one-line flow sequences and mappings, `|` block scalars, comments and `---` documents, and
//! refuses anything else (anchors, tags, folded scalars, multi-line flow, tabs, YAML 1.1
//! booleans like `yes`) with the line number: a file written outside this subset fails its test
//! instead of being half-checked.

use serde_json::{Map, Number, Value};

/// Every document of `text`, in order (empty documents skipped).
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    let mut current: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" {
            docs.push(std::mem::take(&mut current));
        } else {
            current.push((i + 1, line.to_string()));
        }
    }
    docs.push(current);
    let mut out = Vec::new();
    for lines in docs {
        let mut p = Parser { lines, pos: 0 };
        if p.next_significant().is_none() {
            continue;
        }
        let v = p.node(0)?;
        if let Some((n, _)) = p.next_significant() {
            return Err(format!("line {n}: unexpected content after the document"));
        }
        out.push(v);
    }
    Ok(out)
}

/// The single document of `text`.
pub fn document(text: &str) -> Result<Value, String> {
    let mut docs = documents(text)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(format!("expected one YAML document, found {n}")),
    }
}

struct Parser {
    lines: Vec<(usize, String)>,
    pos: usize,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// `line` without its comment: a `#` at the start or after a space, outside quotes.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' && (i == 0 || bytes[i - 1] == b' ') => return line[..i].trim_end(),
            None => {}
        }
    }
    line.trim_end()
}

/// Splits `key: value` (or `key:` at the end) at the first such colon outside quotes and
/// brackets; `None` when the text is not a mapping entry.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                b':' if depth == 0 && (i + 1 == bytes.len() || bytes[i + 1] == b' ') => {
                    return Some((text[..i].trim_end(), text[i + 1..].trim()));
                }
                _ => {}
            },
        }
    }
    None
}

impl Parser {
    /// The next line with content (after skipping blank and comment-only lines), as
    /// (line number, indent).
    fn next_significant(&mut self) -> Option<(usize, usize)> {
        while let Some((n, line)) = self.lines.get(self.pos) {
            if line.contains('\t') && !strip_comment(line).is_empty() {
                // Reported by the caller through an impossible indent.
                return Some((*n, usize::MAX));
            }
            if strip_comment(line).trim().is_empty() {
                self.pos += 1;
                continue;
            }
            return Some((*n, indent_of(line)));
        }
        None
    }

    fn content(&self) -> String {
        self.lines
            .get(self.pos)
            .map(|(_, l)| strip_comment(l).trim().to_string())
            .unwrap_or_default()
    }

    /// The node whose first line is the next significant one, at indent >= `min`.
    fn node(&mut self, min: usize) -> Result<Value, String> {
        let Some((n, indent)) = self.next_significant() else {
            return Ok(Value::Null);
        };
        if indent == usize::MAX {
            return Err(format!("line {n}: tabs are not YAML indentation"));
        }
        if indent < min {
            return Ok(Value::Null);
        }
        let text = self.content();
        if text == "-" || text.starts_with("- ") {
            self.sequence(indent)
        } else if split_key(&text).is_some() {
            self.mapping(indent)
        } else {
            self.pos += 1;
            scalar(&text, n)
        }
    }

    fn mapping(&mut self, indent: usize) -> Result<Value, String> {
        let mut map = Map::new();
        while let Some((n, at)) = self.next_significant() {
            if at == usize::MAX {
                return Err(format!("line {n}: tabs are not YAML indentation"));
            }
            if at < indent {
                break;
            }
            if at > indent {
                return Err(format!("line {n}: indented deeper than its mapping"));
            }
            let text = self.content();
            if text.starts_with("- ") || text == "-" {
                break;
            }
            let Some((key, value)) = split_key(&text) else {
                return Err(format!("line {n}: expected `key: value`, found {text:?}"));
            };
            let key = match scalar(key, n)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.pos += 1;
            let v = match value {
                "" => match self.next_significant() {
                    // A sequence may sit at its key's indent (`key:` then `- item`).
                    Some((_, at)) if at == indent && self.content().starts_with('-') => {
                        self.sequence(indent)?
                    }
                    Some((_, at)) if at > indent && at != usize::MAX => self.node(indent + 1)?,
                    _ => Value::Null,
                },
                "|" | "|-" => self.block_scalar(indent, value == "|"),
                v if v.starts_with('|') || v.starts_with('>') => {
                    return Err(format!(
                        "line {n}: block scalar style {v:?} is not supported"
                    ));
                }
                v => scalar(v, n)?,
            };
            if map.insert(key.clone(), v).is_some() {
                return Err(format!("line {n}: duplicate key {key:?}"));
            }
        }
        Ok(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        while let Some((n, at)) = self.next_significant() {
            if at != indent {
                if at > indent && at != usize::MAX {
                    return Err(format!("line {n}: indented deeper than its sequence"));
                }
                break;
            }
            let text = self.content();
            if !(text == "-" || text.starts_with("- ")) {
                break;
            }
            let rest = text[1..].trim_start();
            if rest.is_empty() {
                self.pos += 1;
                items.push(self.node(indent + 1)?);
            } else if split_key(rest).is_some() || rest == "-" || rest.starts_with("- ") {
                // `- key: value` opens a mapping (`- - x` a sequence) at the column of `key`.
                let line = &self.lines[self.pos].1;
                let col =
                    indent + 1 + (line[indent + 1..].len() - line[indent + 1..].trim_start().len());
                let replaced = format!("{}{}", " ".repeat(col), &line[col..]);
                self.lines[self.pos].1 = replaced;
                items.push(self.node(col)?);
            } else {
                self.pos += 1;
                items.push(scalar(rest, n)?);
            }
        }
        Ok(Value::Array(items))
    }

    /// A `|` (keep one final newline) or `|-` (none) block scalar under a key at `indent`.
    fn block_scalar(&mut self, indent: usize, keep_newline: bool) -> Value {
        let mut body: Vec<String> = Vec::new();
        let mut content_indent = None;
        while let Some((_, line)) = self.lines.get(self.pos) {
            if line.trim().is_empty() {
                body.push(String::new());
                self.pos += 1;
                continue;
            }
            let at = indent_of(line);
            if at <= indent {
                break;
            }
            let ci = *content_indent.get_or_insert(at);
            if at < ci {
                break;
            }
            body.push(line[ci..].to_string());
            self.pos += 1;
        }
        while body.last().is_some_and(String::is_empty) {
            body.pop();
        }
        let mut s = body.join("\n");
        if keep_newline && !s.is_empty() {
            s.push('\n');
        }
        Value::String(s)
    }
}

/// One scalar or one-line flow collection.
fn scalar(text: &str, line: usize) -> Result<Value, String> {
    let t = text.trim();
    if t.starts_with('&') || t.starts_with('*') || t.starts_with('!') {
        return Err(format!(
            "line {line}: anchors, aliases and tags are not supported"
        ));
    }
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or(format!("line {line}: a flow sequence must end on its line"))?;
        return split_flow(inner, line)?
            .into_iter()
            .map(|item| scalar(item, line))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Some(inner) = t.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or(format!("line {line}: a flow mapping must end on its line"))?;
        let mut map = Map::new();
        for item in split_flow(inner, line)? {
            let (k, v) =
                split_key(item).ok_or(format!("line {line}: expected `key: value` in {item:?}"))?;
            let k = match scalar(k, line)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            map.insert(k, scalar(v, line)?);
        }
        return Ok(Value::Object(map));
    }
    if t.starts_with('"') {
        return serde_json::from_str::<String>(t)
            .map(Value::String)
            .map_err(|e| format!("line {line}: double-quoted scalar {t:?}: {e}"));
    }
    if let Some(inner) = t.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or(format!("line {line}: unterminated single-quoted scalar"))?;
        return Ok(Value::String(inner.replace("''", "'")));
    }
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if matches!(
        t.to_ascii_lowercase().as_str(),
        "yes" | "no" | "on" | "off" | "y" | "n"
    ) {
        return Err(format!(
            "line {line}: {t:?} is a boolean to YAML 1.1 parsers and a string to YAML 1.2 ones; quote it"
        ));
    }
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    if t.contains(['.', 'e', 'E']) && t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
        if let Some(n) = t.parse::<f64>().ok().and_then(Number::from_f64) {
            return Ok(Value::Number(n));
        }
    }
    Ok(Value::String(t.to_string()))
}

/// Splits the inside of a one-line flow collection at top-level commas.
fn split_flow(inner: &str, line: usize) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut quote: Option<u8> = None;
    let mut start = 0;
    for (i, b) in inner.bytes().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' | b'{' => {
                    return Err(format!(
                        "line {line}: nested flow collections are not supported"
                    ))
                }
                b',' => {
                    out.push(inner[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    let last = inner[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_shapes_the_deploy_files_use() {
        let text = r#"
# comment
name: demo   # trailing comment
services:
  envoy:
    image: "envoyproxy/envoy:v1.40.0"
    command: ["-c", 'it''s', plain]
    ports:
      - "127.0.0.1:10000:10000"
    volumes:
      - type: bind
        source: ../a#b
        read_only: true
    empty: {}
list:
- a: 1
  b: 2.5
- - nested
text: |
  line one

  line three
strip: |-
  no newline
cluster: "outbound|9002||auth.ns.svc.cluster.local"
"#;
        let v = document(text).unwrap();
        assert_eq!(
            v,
            json!({
                "name": "demo",
                "services": {"envoy": {
                    "image": "envoyproxy/envoy:v1.40.0",
                    "command": ["-c", "it's", "plain"],
                    "ports": ["127.0.0.1:10000:10000"],
                    "volumes": [{"type": "bind", "source": "../a#b", "read_only": true}],
                    "empty": {},
                }},
                "list": [{"a": 1, "b": 2.5}, ["nested"]],
                "text": "line one\n\nline three\n",
                "strip": "no newline",
                "cluster": "outbound|9002||auth.ns.svc.cluster.local",
            })
        );
    }

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let docs = documents("---\na: 1\n---\n# only a comment\n---\nb: [x]\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": ["x"]})]);
    }

    #[test]
    fn refuses_what_it_does_not_know_with_the_line() {
        let table = [
            ("a: 1\na: 2\n", "line 2"),
            ("a: &x 1\n", "line 1"),
            ("a: >\n  folded\n", "line 1"),
            ("a:\n\tb: 1\n", "line 2"),
            ("a: [1,\n  2]\n", "line 1"),
            ("enabled: yes\n", "line 1"),
            ("a:\n  b: 1\n    c: 2\n", "line 3"),
        ];
        for (text, line) in table {
            let err = documents(text).expect_err(text);
            assert!(err.contains(line), "{text:?}: {err}");
        }
    }
}
