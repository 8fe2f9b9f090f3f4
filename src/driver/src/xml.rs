//! ADAPTER — a small XML element tree the driver reads domain documents with.
//!
//! `vireo-domain` (issue 3) is being written in parallel and had no public API when the driver
//! was started. This module is the minimum the driver needs (navigate elements, read attributes
//! and text, set a few values, write the document back) so that the store, the translation and
//! `vireoctl` could be built; it should be replaced by `vireo-domain`'s typed views once they land.
//! It keeps comments, processing instructions and text so that a definition written back after a
//! small edit (a generated UUID, a new name) is otherwise the user's own document.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::fmt::Write as _;

/// A parse failure with its position in the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct XmlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Unescaped character data.
    Text(String),
    /// Anything else kept verbatim (comments, CDATA, processing instructions), already escaped.
    Raw(String),
}

/// An element with attributes in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// 1-based line of the start tag, for error messages.
    pub line: usize,
}

/// A parsed document: the prolog nodes (XML declaration, comments) and the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub prolog: Vec<String>,
    pub root: Element,
}

fn position(text: &str, offset: u64) -> (usize, usize) {
    let upto = &text.as_bytes()[..(offset as usize).min(text.len())];
    let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

fn err(text: &str, offset: u64, message: impl Into<String>) -> XmlError {
    let (line, column) = position(text, offset);
    XmlError {
        line,
        column,
        message: message.into(),
    }
}

fn start_element(text: &str, offset: u64, e: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|x| err(text, offset, format!("<{name}>: bad attribute: {x}")))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|x| err(text, offset, format!("<{name}> attribute {key}: {x}")))?
            .into_owned();
        if attrs.iter().any(|(k, _)| *k == key) {
            return Err(err(
                text,
                offset,
                format!("<{name}>: duplicate attribute {key}"),
            ));
        }
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        line: position(text, offset).0,
    })
}

impl Document {
    /// Parses a whole document; exactly one root element is required.
    pub fn parse(text: &str) -> Result<Document, XmlError> {
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut prolog = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let offset = reader.buffer_position();
            let ev = reader
                .read_event()
                .map_err(|e| err(text, reader.error_position(), e.to_string()))?;
            let node = match ev {
                Event::Start(e) => {
                    if root.is_some() {
                        return Err(err(text, offset, "content after the root element"));
                    }
                    stack.push(start_element(text, offset, &e)?);
                    continue;
                }
                Event::Empty(e) => {
                    if root.is_some() {
                        return Err(err(text, offset, "content after the root element"));
                    }
                    Node::Element(start_element(text, offset, &e)?)
                }
                Event::End(_) => match stack.pop() {
                    Some(el) => Node::Element(el),
                    None => return Err(err(text, offset, "unexpected end tag")),
                },
                Event::Text(t) => {
                    let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                    let s = t
                        .decode()
                        .map_err(|e| err(text, offset, e.to_string()))
                        .and_then(|d| {
                            quick_xml::escape::unescape(&d)
                                .map(|c| c.into_owned())
                                .map_err(|e| err(text, offset, e.to_string()))
                        })
                        .unwrap_or(raw);
                    if stack.is_empty() {
                        if !s.trim().is_empty() {
                            return Err(err(text, offset, "text outside the root element"));
                        }
                        continue;
                    }
                    Node::Text(s)
                }
                Event::GeneralRef(r) => {
                    let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                    let resolved = match name.as_str() {
                        "lt" => "<".to_owned(),
                        "gt" => ">".to_owned(),
                        "amp" => "&".to_owned(),
                        "apos" => "'".to_owned(),
                        "quot" => "\"".to_owned(),
                        n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16)
                            .ok()
                            .and_then(char::from_u32)
                            .map(String::from)
                            .ok_or_else(|| {
                                err(text, offset, format!("bad character reference &{n};"))
                            })?,
                        n if n.starts_with('#') => n[1..]
                            .parse::<u32>()
                            .ok()
                            .and_then(char::from_u32)
                            .map(String::from)
                            .ok_or_else(|| {
                                err(text, offset, format!("bad character reference &{n};"))
                            })?,
                        n => return Err(err(text, offset, format!("unknown entity &{n};"))),
                    };
                    Node::Text(resolved)
                }
                Event::CData(c) => Node::Raw(format!(
                    "<![CDATA[{}]]>",
                    String::from_utf8_lossy(c.as_ref())
                )),
                Event::Comment(c) => {
                    Node::Raw(format!("<!--{}-->", String::from_utf8_lossy(c.as_ref())))
                }
                Event::PI(p) => Node::Raw(format!("<?{}?>", String::from_utf8_lossy(p.as_ref()))),
                Event::Decl(d) => {
                    prolog.push(format!("<?{}?>", String::from_utf8_lossy(d.as_ref())));
                    continue;
                }
                Event::DocType(_) => return Err(err(text, offset, "DOCTYPE is not allowed")),
                Event::Eof => break,
            };
            match (stack.last_mut(), node) {
                (Some(parent), node) => {
                    // Adjacent text pieces (text + entity + text) become one node.
                    if let (Node::Text(new), Some(Node::Text(prev))) =
                        (&node, parent.children.last_mut())
                    {
                        prev.push_str(new);
                    } else {
                        parent.children.push(node);
                    }
                }
                (None, Node::Element(el)) => root = Some(el),
                (None, Node::Raw(r)) => prolog.push(r),
                (None, Node::Text(_)) => {}
            }
        }
        if let Some(open) = stack.last() {
            return Err(XmlError {
                line: position(text, text.len() as u64).0,
                column: 1,
                message: format!(
                    "element <{}> opened on line {} is not closed",
                    open.name, open.line
                ),
            });
        }
        let root = root.ok_or_else(|| err(text, 0, "no root element"))?;
        Ok(Document { prolog, root })
    }

    /// Writes the document back (the prolog, then the root element).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        for p in &self.prolog {
            if !p.starts_with("<?xml") {
                out.push_str(p);
                out.push('\n');
            }
        }
        self.root.write(&mut out);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

fn escape(s: &str, attr: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\'' if attr => o.push_str("&apos;"),
            '"' if attr => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

impl Element {
    pub fn new(name: &str) -> Element {
        Element {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_attr(&mut self, key: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.attrs.push((key.to_owned(), value.to_owned())),
        }
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.name == name => Some(e),
            _ => None,
        })
    }

    /// Concatenated text content of direct text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Trimmed text of a child element, if the child exists.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text().trim().to_owned())
    }

    /// Replaces all children by a single text node.
    pub fn set_text(&mut self, text: &str) {
        self.children = vec![Node::Text(text.to_owned())];
    }

    /// Inserts `el` right after the first child named `after` (or first if there is none),
    /// copying the indentation the document already uses.
    pub fn insert_after(&mut self, after: &str, el: Element) {
        let pos = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name == after))
            .map(|p| p + 1)
            .unwrap_or(0);
        let indent = self
            .children
            .iter()
            .find_map(|n| match n {
                Node::Text(t) if t.trim().is_empty() && t.contains('\n') => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default();
        if indent.is_empty() {
            self.children.insert(pos, Node::Element(el));
        } else {
            self.children.insert(pos, Node::Element(el));
            self.children.insert(pos, Node::Text(indent));
        }
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            let _ = write!(out, " {k}='{}'", escape(v, true));
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for c in &self.children {
            match c {
                Node::Element(e) => e.write(out),
                Node::Text(t) => out.push_str(&escape(t, false)),
                Node::Raw(r) => out.push_str(r),
            }
        }
        let _ = write!(out, "</{}>", self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_comments_and_text() {
        let src = "<?xml version='1.0'?>\n<!-- top -->\n<domain type='kvm'>\n  <name>a&amp;b</name>\n  <!-- c -->\n  <x a=\"1\"/>\n</domain>\n";
        let d = Document::parse(src).unwrap();
        assert_eq!(d.root.child_text("name").as_deref(), Some("a&b"));
        let out = d.to_xml();
        assert!(out.contains("<!-- c -->"), "{out}");
        assert!(out.contains("<name>a&amp;b</name>"), "{out}");
        assert_eq!(Document::parse(&out).unwrap().to_xml(), out);
    }

    #[test]
    fn errors_have_positions() {
        let e = Document::parse("<domain>\n  <name>x</nme>\n</domain>").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = Document::parse("<domain>\n<name>").unwrap_err();
        assert!(e.message.contains("not closed"), "{e}");
        assert!(Document::parse("").is_err());
        assert!(Document::parse("<a/><b/>").is_err());
    }

    #[test]
    fn insert_after_uses_indentation() {
        let mut d = Document::parse("<domain>\n  <name>x</name>\n</domain>").unwrap();
        let mut u = Element::new("uuid");
        u.set_text("u");
        d.root.insert_after("name", u);
        assert_eq!(
            d.to_xml(),
            "<domain>\n  <name>x</name>\n  <uuid>u</uuid>\n</domain>\n"
        );
    }
}
