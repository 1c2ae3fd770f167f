//! A small logic-less template language for the guidance pages, a subset of Mustache: `{{name}}`
//! inserts a value, always HTML-escaped (there is no unescaped form); `{{#name}}…{{/name}}`
//! renders its body once per item of a list, once for present text or `true`, and not at all
//! otherwise; `{{^name}}…{{/name}}` renders its body only when `{{#name}}` would not. Inside a
//! list item, names are looked up in the item first, then outwards.
//!
//! Templates are parsed when the configuration loads, and every name they use must be in the
//! vocabulary the gateway fills ([`VOCABULARY`]), so a typo is a load error, not an empty page.

use std::fmt::Write as _;

/// Every name a template may use.
pub(crate) const VOCABULARY: &[&str] = &[
    // Both pages.
    "lang",
    "title",
    "organisation",
    "request_id",
    "whoami_path",
    "registration_authority",
    "hr",
    "service_desk",
    // Refusal pages.
    "status",
    "reason",
    "what_happened",
    "what_to_do",
    "text",
    "has_contacts",
    "contacts",
    "name",
    "help_with",
    "phone",
    "phone_uri",
    "email",
    "url",
    "hours",
    "location",
    "choose_role",
    "session_header",
    "example_role",
    // Role profiles (refusal and identity pages).
    "has_roles",
    "roles",
    "id",
    "role_code",
    "selected",
    // The identity page.
    "user_id",
    "method",
    "assurance",
    "selected_role",
    "no_roles",
    "roles_unavailable",
    "certificate",
    "not_after",
    "days_left",
    "renewal_due",
    "token",
    "expires",
    "issuer",
];

/// Largest template accepted, bytes.
pub(crate) const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Deepest nesting of sections.
const MAX_DEPTH: usize = 8;

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Text(String),
    Var(&'static str),
    Section { name: &'static str, inverted: bool, body: Vec<Node> },
}

/// Why a template does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TemplateError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A value to insert.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// Text (escaped when inserted; a section over it renders when it is not empty).
    Text(String),
    /// A flag for sections.
    Bool(bool),
    /// Items for a section to repeat over.
    List(Vec<Scope>),
    /// One nested record (a section renders once with it as the innermost scope).
    Record(Scope),
}

/// Names and their values, in one level of lookup.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope(Vec<(&'static str, Value)>);

impl Scope {
    /// An empty scope.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds text.
    pub(crate) fn text(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.0.push((name, Value::Text(value.into())));
        self
    }

    /// Adds text when there is some.
    pub(crate) fn opt(&mut self, name: &'static str, value: Option<impl Into<String>>) -> &mut Self {
        if let Some(v) = value {
            self.text(name, v);
        }
        self
    }

    /// Adds a flag.
    pub(crate) fn flag(&mut self, name: &'static str, value: bool) -> &mut Self {
        self.0.push((name, Value::Bool(value)));
        self
    }

    /// Adds a list.
    pub(crate) fn list(&mut self, name: &'static str, items: Vec<Scope>) -> &mut Self {
        self.0.push((name, Value::List(items)));
        self
    }

    /// Adds a record.
    pub(crate) fn record(&mut self, name: &'static str, record: Scope) -> &mut Self {
        self.0.push((name, Value::Record(record)));
        self
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl Template {
    /// Parses `source`, checking every name against [`VOCABULARY`].
    pub(crate) fn parse(source: &str) -> Result<Self, TemplateError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError { line: 1, message: format!("larger than {MAX_TEMPLATE_BYTES} bytes") });
        }
        // Open sections: (name, inverted, nodes before it, line it opened on).
        let mut stack: Vec<(&'static str, bool, Vec<Node>, usize)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = source;
        let line_of = |rest: &str| source[..source.len() - rest.len()].matches('\n').count() + 1;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_owned()));
            }
            let line = line_of(&rest[open..]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| TemplateError { line, message: "`{{` is not closed".into() })?;
            let tag = after[..close].trim();
            rest = &after[close + 2..];
            let (sigil, name) = match tag.chars().next() {
                Some(c @ ('#' | '^' | '/')) => (Some(c), tag[1..].trim()),
                _ => (None, tag),
            };
            let name = VOCABULARY.iter().copied().find(|v| *v == name).ok_or_else(|| TemplateError {
                line,
                message: format!("unknown name {name:?} (known: {})", VOCABULARY.join(", ")),
            })?;
            match sigil {
                None => nodes.push(Node::Var(name)),
                Some(s @ ('#' | '^')) => {
                    if stack.len() == MAX_DEPTH {
                        return Err(TemplateError { line, message: format!("sections nest deeper than {MAX_DEPTH}") });
                    }
                    stack.push((name, s == '^', std::mem::take(&mut nodes), line));
                }
                Some(_) => {
                    let (open_name, inverted, before, _) = stack
                        .pop()
                        .ok_or_else(|| TemplateError { line, message: format!("`{{{{/{name}}}}}` closes nothing") })?;
                    if open_name != name {
                        return Err(TemplateError { line, message: format!("`{{{{/{name}}}}}` closes `{open_name}`") });
                    }
                    let body = std::mem::replace(&mut nodes, before);
                    nodes.push(Node::Section { name, inverted, body });
                }
            }
        }
        if let Some((name, _, _, line)) = stack.pop() {
            return Err(TemplateError { line, message: format!("section `{name}` is not closed") });
        }
        if !rest.is_empty() {
            nodes.push(Node::Text(rest.to_owned()));
        }
        Ok(Self { nodes })
    }

    /// Renders with `root` as the outermost scope.
    pub(crate) fn render(&self, root: &Scope) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let mut scopes = vec![root];
        render(&self.nodes, &mut scopes, &mut out);
        out
    }
}

fn lookup<'s>(scopes: &[&'s Scope], name: &str) -> Option<&'s Value> {
    scopes.iter().rev().find_map(|s| s.get(name))
}

fn render<'s>(nodes: &'s [Node], scopes: &mut Vec<&'s Scope>, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Var(name) => {
                if let Some(Value::Text(t)) = lookup(scopes, name) {
                    escape_into(t, out);
                }
            }
            Node::Section { name, inverted, body } => {
                let value = lookup(scopes, name);
                let shown = match value {
                    None | Some(Value::Bool(false)) => false,
                    Some(Value::Text(t)) => !t.is_empty(),
                    Some(Value::List(items)) => !items.is_empty(),
                    Some(Value::Bool(true) | Value::Record(_)) => true,
                };
                match (inverted, value) {
                    (true, _) => {
                        if !shown {
                            render(body, scopes, out);
                        }
                    }
                    (false, _) if !shown => {}
                    (false, Some(Value::List(items))) => {
                        for item in items {
                            scopes.push(item);
                            render(body, scopes, out);
                            scopes.pop();
                        }
                    }
                    (false, Some(Value::Record(record))) => {
                        scopes.push(record);
                        render(body, scopes, out);
                        scopes.pop();
                    }
                    (false, _) => render(body, scopes, out),
                }
            }
        }
    }
}

/// Appends `text` with `& < > " '` escaped: safe in element content and in quoted attributes.
pub(crate) fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls other than whitespace have no business in a page.
            c if c.is_control() && !matches!(c, '\n' | '\t') => {
                let _ = write!(out, "&#xFFFD;");
            }
            c => out.push(c),
        }
    }
}

/// `text` HTML-escaped (for tests that compare rendered pages with text).
#[cfg(test)]
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_sections_repeat() {
        let t = Template::parse("<h1>{{title}}</h1>{{#roles}}<li title=\"{{id}}\">{{id}} at {{organisation}}</li>{{/roles}}{{^roles}}none{{/roles}}").unwrap();
        let mut item = Scope::new();
        item.text("id", "<script>alert('x')</script>");
        let mut root = Scope::new();
        root.text("title", "A & B").text("organisation", "\"RX1\"").list("roles", vec![item]);
        assert_eq!(
            t.render(&root),
            "<h1>A &amp; B</h1><li title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; at &quot;RX1&quot;</li>"
        );
        let mut empty = Scope::new();
        empty.list("roles", Vec::new());
        assert_eq!(t.render(&empty), "<h1></h1>none");
    }

    #[test]
    fn flags_text_and_records_open_sections() {
        let t = Template::parse(
            "{{#selected}}yes{{/selected}}{{^selected}}no{{/selected}}|{{#certificate}}{{days_left}}{{/certificate}}",
        )
        .unwrap();
        let mut root = Scope::new();
        root.flag("selected", true);
        let mut cert = Scope::new();
        cert.text("days_left", "29");
        root.record("certificate", cert);
        assert_eq!(t.render(&root), "yes|29");
        assert_eq!(t.render(&Scope::new()), "no|");
    }

    #[test]
    fn bad_templates_are_refused_with_a_line() {
        let err = |s: &str| Template::parse(s).unwrap_err();
        assert_eq!(err("ok\n{{tittle}}").line, 2);
        assert!(err("{{tittle}}").message.contains("unknown name"));
        assert!(err("{{#roles}}").message.contains("not closed"));
        assert!(err("{{/roles}}").message.contains("closes nothing"));
        assert!(err("{{#roles}}{{/title}}").message.contains("closes `roles`"));
        assert!(err("{{title").message.contains("not closed"));
        assert!(err("{{{title}}}").message.contains("unknown name"), "no unescaped form");
        assert!(err(&"{{#roles}}".repeat(9)).message.contains("nest"));
        assert!(err(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).message.contains("larger"));
    }

    #[test]
    fn controls_are_replaced() {
        assert_eq!(escape("a\u{0}b\u{1b}[31m"), "a&#xFFFD;b&#xFFFD;[31m");
    }
}
