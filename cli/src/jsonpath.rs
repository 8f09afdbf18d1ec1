//! kubectl's JSONPath templates for `-o jsonpath=…`: text with `{expression}` actions,
//! `{range expression}…{end}` loops and `{"literal"}` strings (`{"\n"}`). The expressions are
//! evaluated by `jsonpath-rust` (already in the tree through kube); a missing field prints
//! nothing, as kubectl's default `--allow-missing-template-keys`.

use jsonpath_rust::JsonPath as _;
use serde_json::Value;

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    /// Text printed as it is.
    Text(String),
    /// An expression (rooted: `$…`); its results printed space-separated.
    Path(String),
    /// `{range path}` … `{end}`: the body once per result, relative to it.
    Range(String, Vec<Node>),
}

/// Most actions of one template (a budget: the template comes from the command line).
const MAX_ACTIONS: usize = 256;

impl Template {
    /// Parses a template as kubectl writes them (`{.metadata.name}`, `{range .items[*]}…{end}`).
    ///
    /// # Errors
    ///
    /// A message naming the unclosed brace, the stray `{end}`, the missing `{end}` or the
    /// expression that does not parse.
    pub fn parse(text: &str) -> Result<Self, String> {
        // Frames of open `{range}`s: (expression, nodes so far).
        let mut stack: Vec<(String, Vec<Node>)> = vec![(String::new(), Vec::new())];
        let mut rest = text;
        let mut actions = 0usize;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push_text(&mut stack, rest);
                break;
            };
            push_text(&mut stack, &rest[..open]);
            let after = &rest[open + 1..];
            let close = action_end(after)
                .ok_or_else(|| format!("jsonpath {text:?}: unclosed {{ at byte {open}"))?;
            let action = after[..close].trim();
            rest = &after[close + 1..];
            actions += 1;
            if actions > MAX_ACTIONS {
                return Err(format!(
                    "jsonpath {text:?}: more than {MAX_ACTIONS} actions"
                ));
            }
            if action == "end" {
                if stack.len() < 2 {
                    return Err(format!("jsonpath {text:?}: {{end}} without {{range}}"));
                }
                let (path, nodes) = stack.pop().unwrap_or_default();
                if let Some(top) = stack.last_mut() {
                    top.1.push(Node::Range(path, nodes));
                }
            } else if let Some(expr) = action.strip_prefix("range ") {
                stack.push((rooted(text, expr.trim())?, Vec::new()));
            } else if action.starts_with('"') {
                let s: String = serde_json::from_str(action)
                    .map_err(|e| format!("jsonpath {text:?}: string {action}: {e}"))?;
                push_text(&mut stack, &s);
            } else if action.is_empty() {
                return Err(format!("jsonpath {text:?}: empty {{}}"));
            } else {
                let path = rooted(text, action)?;
                if let Some(top) = stack.last_mut() {
                    top.1.push(Node::Path(path));
                }
            }
        }
        if stack.len() != 1 {
            return Err(format!("jsonpath {text:?}: {{range}} without {{end}}"));
        }
        let nodes = stack.pop().map(|(_, n)| n).unwrap_or_default();
        Ok(Template { nodes })
    }

    /// The template applied to `root`.
    #[must_use]
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, root, &mut out);
        out
    }
}

fn push_text(stack: &mut [(String, Vec<Node>)], s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(top) = stack.last_mut() {
        match top.1.last_mut() {
            Some(Node::Text(t)) => t.push_str(s),
            _ => top.1.push(Node::Text(s.to_owned())),
        }
    }
}

/// The index of the `}` closing an action that starts at `s` (braces inside a quoted string
/// or a filter's brackets do not count).
fn action_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            (None, _) => {}
        }
    }
    None
}

/// kubectl's expressions start at the current object (`.items[*]`); jsonpath-rust's at `$`.
fn rooted(text: &str, expr: &str) -> Result<String, String> {
    let path = if expr.starts_with('$') {
        expr.to_owned()
    } else if expr.starts_with('.') || expr.starts_with('[') {
        format!("${expr}")
    } else {
        format!("$.{expr}")
    };
    Value::Null
        .query(&path)
        .map(|_| path.clone())
        .map_err(|e| format!("jsonpath {text:?}: {expr}: {e}"))
}

fn render_nodes(nodes: &[Node], at: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let found = at.query(p).unwrap_or_default();
                let shown: Vec<String> = found.into_iter().map(scalar).collect();
                out.push_str(&shown.join(" "));
            }
            Node::Range(p, body) => {
                let found = at.query(p).unwrap_or_default();
                // `{range .items}` walks the array itself, as `{range .items[*]}` does.
                let items: Vec<&Value> = match found.as_slice() {
                    [Value::Array(a)] => a.iter().collect(),
                    _ => found,
                };
                for item in items {
                    render_nodes(body, item, out);
                }
            }
        }
    }
}

/// A result as kubectl prints it: strings bare, anything else as compact JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"size": "1Gi"}},
            {"metadata": {"name": "b"}, "spec": {"size": "2Gi"}},
        ]})
    }

    #[rstest]
    #[case::names("{.items[*].metadata.name}", "a b")]
    #[case::text_around("names: {.items[0].metadata.name}!", "names: a!")]
    #[case::range_with_newlines(
        "{range .items[*]}{.metadata.name}={.spec.size}{\"\\n\"}{end}",
        "a=1Gi\nb=2Gi\n"
    )]
    #[case::range_over_the_array("{range .items}{.metadata.name},{end}", "a,b,")]
    #[case::missing_prints_nothing("[{.items[1].metadata.labels.x}]", "[]")]
    #[case::objects_as_json("{.items[0].metadata.labels}", "{\"x\":\"1\"}")]
    #[case::filter("{.items[?(@.spec.size=='2Gi')].metadata.name}", "b")]
    #[case::dollar_root("{$.kind}", "List")]
    #[case::bare_field("{kind}", "List")]
    fn renders(#[case] template: &str, #[case] want: &str) {
        let t = Template::parse(template).map_err(|e| e.to_string());
        assert_eq!(t.map(|t| t.render(&list())), Ok(want.to_owned()));
    }

    #[rstest]
    #[case::unclosed("{.items", "unclosed {")]
    #[case::stray_end("{end}", "{end} without {range}")]
    #[case::open_range("{range .items[*]}{.a}", "{range} without {end}")]
    #[case::empty("{}", "empty {}")]
    #[case::bad_string("{\"\\q\"}", "string")]
    #[case::bad_expression("{.items[}", "")]
    fn refuses(#[case] template: &str, #[case] want: &str) {
        match Template::parse(template) {
            Ok(t) => panic!("{template:?} parsed: {t:?}"),
            Err(e) => assert!(e.contains(want), "{template:?}: {e}"),
        }
    }

    #[test]
    fn a_template_has_a_budget() {
        let long = "{.a}".repeat(MAX_ACTIONS + 1);
        assert!(Template::parse(&long).is_err_and(|e| e.contains("more than")));
    }
}
