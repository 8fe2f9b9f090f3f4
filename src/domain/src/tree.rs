//! The lossless document tree.
//!
//! Every node keeps its source form (escaped text, attribute quoting and spacing, the exact
//! end tag), so writing an unedited document gives back the input byte for byte. quick-xml is
//! the tokenizer and well-formedness checker; the raw text of each node is cut from the input
//! by offsets, which is what makes the tree lossless.

use std::borrow::Cow;
use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::{Error, ErrorKind, Position};

/// Deepest element nesting accepted. libxml2 (and so libvirt) refuses more than 256 levels;
/// the limit also keeps the recursive writer and drop far from the stack's end.
pub const MAX_DEPTH: usize = 256;

/// Maps byte offsets to line/column.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { text, starts }
    }

    fn pos(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        Position {
            line: u32::try_from(line + 1).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
            offset,
        }
    }
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Character data, including entity and character references, as written in the source.
    Text(Text),
    /// `<![CDATA[...]]>`, raw including the delimiters.
    CData(Markup),
    /// `<!--...-->`, raw including the delimiters.
    Comment(Markup),
    /// `<?target ...?>`, raw.
    Pi(Markup),
    /// `<?xml ...?>`, raw.
    Decl(Markup),
    /// `<!DOCTYPE ...>`, raw.
    DocType(Markup),
}

impl Node {
    pub fn pos(&self) -> Position {
        match self {
            Node::Element(e) => e.pos,
            Node::Text(t) => t.pos,
            Node::CData(m) | Node::Comment(m) | Node::Pi(m) | Node::Decl(m) | Node::DocType(m) => {
                m.pos
            }
        }
    }

    pub fn as_element(&self) -> Option<&Element> {
        match self {
            Node::Element(e) => Some(e),
            _ => None,
        }
    }

    pub fn as_element_mut(&mut self) -> Option<&mut Element> {
        match self {
            Node::Element(e) => Some(e),
            _ => None,
        }
    }

    fn is_whitespace_text(&self) -> bool {
        matches!(self, Node::Text(t) if t.is_whitespace())
    }

    fn write(&self, out: &mut String) {
        match self {
            Node::Element(e) => e.write(out),
            Node::Text(t) => out.push_str(&t.raw),
            Node::CData(m) | Node::Comment(m) | Node::Pi(m) | Node::Decl(m) | Node::DocType(m) => {
                out.push_str(&m.raw)
            }
        }
    }
}

/// Markup kept verbatim (comment, CDATA section, processing instruction, declaration, DOCTYPE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markup {
    pub raw: String,
    pub pos: Position,
}

impl Markup {
    pub fn new(raw: impl Into<String>) -> Self {
        Markup {
            raw: raw.into(),
            pos: Position::default(),
        }
    }

    /// The content of a CDATA section (without `<![CDATA[` and `]]>`).
    pub fn cdata_content(&self) -> &str {
        self.raw
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(&self.raw)
    }
}

/// Character data in its escaped source form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    raw: String,
    pub pos: Position,
}

impl Text {
    /// Text node holding `value` (escaped as needed).
    pub fn new(value: &str) -> Self {
        Text {
            raw: escape(value, None),
            pos: Position::default(),
        }
    }

    fn whitespace(ws: String) -> Self {
        Text {
            raw: ws,
            pos: Position::default(),
        }
    }

    /// The source form (entities not expanded).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The character data with predefined entities and character references expanded.
    /// References to entities declared in a DOCTYPE are left as written.
    pub fn value(&self) -> Cow<'_, str> {
        unescape(&self.raw)
    }

    pub fn is_whitespace(&self) -> bool {
        self.raw
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    }
}

/// An attribute with its source spelling: the whitespace before it, the `=` with any spaces
/// around it, the quote character and the escaped value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    name: String,
    raw_value: String,
    quote: char,
    pre: String,
    eq: String,
    pub pos: Position,
}

impl Attribute {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The value with references expanded.
    pub fn value(&self) -> Cow<'_, str> {
        unescape(&self.raw_value)
    }
    /// The value as written in the source.
    pub fn raw_value(&self) -> &str {
        &self.raw_value
    }
    pub fn quote(&self) -> char {
        self.quote
    }
    fn write(&self, out: &mut String) {
        out.push_str(&self.pre);
        out.push_str(&self.name);
        out.push_str(&self.eq);
        out.push(self.quote);
        out.push_str(&self.raw_value);
        out.push(self.quote);
    }
}

/// Formatting used for nodes the library creates: one indentation step and the newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    pub indent_unit: String,
    pub newline: String,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            indent_unit: "  ".into(),
            newline: "\n".into(),
        }
    }
}

/// An element: name, attributes in source order, children, and its source spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    attrs: Vec<Attribute>,
    /// Whitespace between the last attribute and `>` or `/>`.
    tail: String,
    self_closing: bool,
    children: Vec<Node>,
    /// The text between `</` and `>` when it differs from the name (e.g. `</a >`).
    end_raw: Option<String>,
    /// Indentation of the line the element starts on (when it starts a line).
    indent: String,
    pub pos: Position,
}

impl Element {
    /// A new, empty (self-closing) element.
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            attrs: Vec::new(),
            tail: String::new(),
            self_closing: true,
            children: Vec::new(),
            end_raw: None,
            indent: String::new(),
            pos: Position::default(),
        }
    }

    /// Builder helper: adds an attribute.
    pub fn with_attr(mut self, name: &str, value: &str) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder helper: sets the text content.
    pub fn with_text(mut self, text: &str) -> Self {
        self.set_text(text);
        self
    }

    /// Builder helper: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.push_child(Node::Element(child));
        self
    }

    /// The qualified name as written (`prefix:local` or `local`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn local_name(&self) -> &str {
        self.name.rsplit_once(':').map_or(&self.name, |(_, l)| l)
    }

    pub fn prefix(&self) -> Option<&str> {
        self.name.split_once(':').map(|(p, _)| p)
    }

    pub fn is_self_closing(&self) -> bool {
        self.self_closing && self.children.is_empty()
    }

    pub fn attributes(&self) -> &[Attribute] {
        &self.attrs
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The expanded value of an attribute.
    pub fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        self.attribute(name).map(|a| a.value())
    }

    /// Sets an attribute. An existing attribute keeps its place and quote character; a new one
    /// is appended, quoted like the element's other attributes (single quotes by default, as
    /// libvirt writes them).
    pub fn set_attr(&mut self, name: &str, value: &str) {
        if let Some(a) = self.attrs.iter_mut().find(|a| a.name == name) {
            a.raw_value = escape(value, Some(a.quote));
            return;
        }
        let quote = self.attrs.first().map_or('\'', |a| a.quote);
        self.attrs.push(Attribute {
            name: name.to_string(),
            raw_value: escape(value, Some(quote)),
            quote,
            pre: " ".into(),
            eq: "=".into(),
            pos: Position::default(),
        });
    }

    /// Sets or removes an attribute.
    pub fn set_or_remove_attr(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.set_attr(name, v),
            None => {
                self.remove_attr(name);
            }
        }
    }

    /// Removes an attribute; returns whether it existed.
    pub fn remove_attr(&mut self, name: &str) -> bool {
        let before = self.attrs.len();
        self.attrs.retain(|a| a.name != name);
        before != self.attrs.len()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Raw access to the children. Callers that insert elements should prefer
    /// [`Element::insert_ordered`], which keeps indentation.
    pub fn nodes_mut(&mut self) -> &mut Vec<Node> {
        &mut self.children
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(Node::as_element)
    }

    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(Node::as_element_mut)
    }

    /// Child elements with the given qualified name.
    pub fn children_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Element> + 's {
        self.elements().filter(move |e| e.name == name)
    }

    pub fn children_named_mut<'s>(
        &'s mut self,
        name: &'s str,
    ) -> impl Iterator<Item = &'s mut Element> + 's {
        self.elements_mut().filter(move |e| e.name == name)
    }

    /// The first child element with the given qualified name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.elements_mut().find(|e| e.name == name)
    }

    /// The concatenated character data of the direct children (text and CDATA).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            match n {
                Node::Text(t) => s.push_str(&t.value()),
                Node::CData(c) => s.push_str(c.cdata_content()),
                _ => {}
            }
        }
        s
    }

    /// Replaces the character data of the element; child elements and comments stay.
    pub fn set_text(&mut self, value: &str) {
        self.children
            .retain(|n| !matches!(n, Node::Text(_) | Node::CData(_)));
        if !value.is_empty() {
            self.children.insert(0, Node::Text(Text::new(value)));
        }
        if !self.children.is_empty() {
            self.self_closing = false;
        }
    }

    fn push_child(&mut self, node: Node) {
        self.self_closing = false;
        self.children.push(node);
    }

    /// Removes the `index`-th child element named `name` together with the whitespace that
    /// indented it. Returns the removed element.
    pub fn remove_child(&mut self, name: &str, index: usize) -> Option<Element> {
        let pos = self
            .children
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n, Node::Element(e) if e.name == name))
            .nth(index)
            .map(|(i, _)| i)?;
        let removed = self.children.remove(pos);
        if pos > 0 && self.children[pos - 1].is_whitespace_text() {
            self.children.remove(pos - 1);
        }
        removed.as_element().cloned()
    }

    /// Removes all child elements named `name`; returns how many were removed.
    pub fn remove_children_named(&mut self, name: &str) -> usize {
        let mut n = 0;
        while self.remove_child(name, 0).is_some() {
            n += 1;
        }
        n
    }

    /// The first child named `name`, created at its canonical place if missing.
    pub fn ensure_child(&mut self, name: &str, order: &[&str], style: &Style) -> &mut Element {
        let idx = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name == name));
        match idx {
            Some(i) => match &mut self.children[i] {
                Node::Element(e) => e,
                _ => unreachable!("index points at an element"),
            },
            None => self.insert_ordered(Element::new(name), order, style),
        }
    }

    /// Inserts `child` after the last existing child element that comes no later in `order`
    /// (libvirt's canonical order), or before the first child element if none does. Elements
    /// not in `order` go last. The new subtree is indented like its siblings.
    pub fn insert_ordered(
        &mut self,
        mut child: Element,
        order: &[&str],
        style: &Style,
    ) -> &mut Element {
        let rank = |n: &str| order.iter().position(|o| *o == n);
        let new_rank = rank(child.local_name()).unwrap_or(usize::MAX);
        let mut after: Option<usize> = None;
        let mut first_elem: Option<usize> = None;
        for (i, n) in self.children.iter().enumerate() {
            if let Node::Element(e) = n {
                first_elem.get_or_insert(i);
                match rank(e.local_name()) {
                    Some(r) if r <= new_rank => after = Some(i),
                    None if new_rank == usize::MAX => after = Some(i),
                    _ => {}
                }
            }
        }
        let child_indent = self.child_indent(style);
        child.indent = child_indent.clone();
        child.format_new(style);
        let ws = Node::Text(Text::whitespace(format!(
            "{}{}",
            style.newline, child_indent
        )));
        self.self_closing = false;
        let at = match (after, first_elem) {
            (Some(i), _) => {
                self.children.insert(i + 1, ws);
                self.children.insert(i + 2, Node::Element(child));
                i + 2
            }
            (None, Some(i)) => {
                self.children.insert(i, Node::Element(child));
                self.children.insert(i + 1, ws);
                i
            }
            (None, None) => {
                let only_ws = self.children.iter().all(Node::is_whitespace_text);
                if only_ws {
                    self.children.clear();
                    self.children.push(ws);
                    self.children.push(Node::Element(child));
                    self.children.push(Node::Text(Text::whitespace(format!(
                        "{}{}",
                        style.newline, self.indent
                    ))));
                    1
                } else {
                    self.children.push(Node::Element(child));
                    self.children.len() - 1
                }
            }
        };
        match &mut self.children[at] {
            Node::Element(e) => e,
            _ => unreachable!("just inserted an element here"),
        }
    }

    /// Indentation for a new child: that of an existing child element, else one step more
    /// than this element's.
    fn child_indent(&self, style: &Style) -> String {
        for (i, n) in self.children.iter().enumerate() {
            if let Node::Element(_) = n {
                if let Some(Node::Text(t)) = i.checked_sub(1).and_then(|p| self.children.get(p)) {
                    if t.is_whitespace() {
                        if let Some((_, ind)) = t.raw.rsplit_once('\n') {
                            return ind.to_string();
                        }
                    }
                }
            }
        }
        format!("{}{}", self.indent, style.indent_unit)
    }

    /// Indents a subtree built by the library (it has no whitespace of its own).
    fn format_new(&mut self, style: &Style) {
        let has_elems = self.children.iter().any(|n| matches!(n, Node::Element(_)));
        let has_text = self
            .children
            .iter()
            .any(|n| matches!(n, Node::Text(_) | Node::CData(_)));
        if !has_elems || has_text {
            return;
        }
        let inner = format!("{}{}", self.indent, style.indent_unit);
        let old = std::mem::take(&mut self.children);
        for n in old {
            self.children.push(Node::Text(Text::whitespace(format!(
                "{}{}",
                style.newline, inner
            ))));
            match n {
                Node::Element(mut e) => {
                    e.indent = inner.clone();
                    e.format_new(style);
                    self.children.push(Node::Element(e));
                }
                other => self.children.push(other),
            }
        }
        self.children.push(Node::Text(Text::whitespace(format!(
            "{}{}",
            style.newline, self.indent
        ))));
    }

    /// Namespace declarations on this element: (prefix, uri); the default namespace has
    /// prefix "".
    pub fn namespace_decls(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        self.attrs.iter().filter_map(|a| {
            if a.name == "xmlns" {
                Some(("", a.value()))
            } else {
                a.name.strip_prefix("xmlns:").map(|p| (p, a.value()))
            }
        })
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for a in &self.attrs {
            a.write(out);
        }
        out.push_str(&self.tail);
        if self.self_closing && self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for c in &self.children {
            c.write(out);
        }
        out.push_str("</");
        out.push_str(self.end_raw.as_deref().unwrap_or(&self.name));
        out.push('>');
    }

    /// The element serialized on its own.
    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

impl AsRef<Element> for Element {
    fn as_ref(&self) -> &Element {
        self
    }
}

impl AsMut<Element> for Element {
    fn as_mut(&mut self) -> &mut Element {
        self
    }
}

/// A whole XML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    bom: bool,
    prolog: Vec<Node>,
    root: Element,
    epilog: Vec<Node>,
}

impl Document {
    /// A document consisting of `root` only.
    pub fn new(root: Element) -> Self {
        Document {
            bom: false,
            prolog: Vec::new(),
            root,
            epilog: vec![Node::Text(Text::whitespace("\n".into()))],
        }
    }

    /// A document for `root` built in memory, indented with `style` (libvirt's two spaces by
    /// default).
    pub fn new_formatted(mut root: Element, style: &Style) -> Self {
        root.format_new(style);
        Document::new(root)
    }

    /// Parses a document. Fails on anything that is not well-formed XML, with the position
    /// and element path of the problem.
    pub fn parse(input: &str) -> Result<Self, Error> {
        parse(input)
    }

    /// Parses bytes that must be UTF-8 (libvirt's encoding).
    pub fn parse_bytes(input: &[u8]) -> Result<Self, Error> {
        match std::str::from_utf8(input) {
            Ok(s) => parse(s),
            Err(e) => {
                let ok = &input[..e.valid_up_to()];
                let text = String::from_utf8_lossy(ok);
                let pos = LineIndex::new(&text).pos(text.len());
                Err(Error::new(
                    ErrorKind::Encoding(e.to_string()),
                    "",
                    Some(pos),
                ))
            }
        }
    }

    pub fn root(&self) -> &Element {
        &self.root
    }

    pub fn root_mut(&mut self) -> &mut Element {
        &mut self.root
    }

    pub fn prolog(&self) -> &[Node] {
        &self.prolog
    }

    pub fn epilog(&self) -> &[Node] {
        &self.epilog
    }

    pub fn has_bom(&self) -> bool {
        self.bom
    }

    /// Formatting the document uses: newline kind and indentation step, for new nodes.
    pub fn style(&self) -> Style {
        let mut style = Style::default();
        let mut crlf = false;
        for n in &self.root.children {
            if let Node::Text(t) = n {
                if t.is_whitespace() && t.raw.contains('\n') {
                    crlf = t.raw.contains("\r\n");
                    if let Some((_, ind)) = t.raw.rsplit_once('\n') {
                        if !ind.is_empty() && ind.len() > self.root.indent.len() {
                            style.indent_unit = ind[self.root.indent.len()..].to_string();
                        }
                    }
                    break;
                }
            }
        }
        if crlf {
            style.newline = "\r\n".into();
        }
        style
    }

    /// The serialized document.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        if self.bom {
            out.push('\u{feff}');
        }
        for n in &self.prolog {
            n.write(&mut out);
        }
        self.root.write(&mut out);
        for n in &self.epilog {
            n.write(&mut out);
        }
        out
    }
}

/// Finds the namespace URI bound to `prefix` ("" = default namespace) on the element chain
/// `ancestors` (root first, innermost last).
pub fn resolve_prefix<'a>(ancestors: &[&'a Element], prefix: &str) -> Option<Cow<'a, str>> {
    if prefix == "xml" {
        return Some(Cow::Borrowed("http://www.w3.org/XML/1998/namespace"));
    }
    for e in ancestors.iter().rev() {
        for (p, uri) in e.namespace_decls() {
            if p == prefix {
                return if uri.is_empty() { None } else { Some(uri) };
            }
        }
    }
    None
}

/// Escapes character data (`quote` = None) or an attribute value quoted with `quote`.
pub fn escape(value: &str, quote: Option<char>) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' if quote.is_none() => s.push_str("&gt;"),
            '\'' if quote == Some('\'') => s.push_str("&apos;"),
            '"' if quote == Some('"') => s.push_str("&quot;"),
            // Attribute value normalization would turn these into spaces.
            '\n' if quote.is_some() => s.push_str("&#10;"),
            '\r' => s.push_str("&#13;"),
            '\t' if quote.is_some() => s.push_str("&#9;"),
            c => s.push(c),
        }
    }
    s
}

/// Expands the predefined entities and character references; other references stay as written.
pub fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(';') {
            Some(j) => {
                let name = &after[..j];
                match decode_reference(name) {
                    Some(c) => out.push(c),
                    None => {
                        out.push('&');
                        out.push_str(name);
                        out.push(';');
                    }
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn decode_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            let c = char::from_u32(code)?;
            is_xml_char(c).then_some(c)
        }
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == ':' || (!c.is_ascii() && !c.is_whitespace())
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.' || c.is_numeric()
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if is_name_start(c) => {}
        Some(c) => return Err(format!("name '{name}' cannot start with '{c}'")),
        None => return Err("empty name".into()),
    }
    if let Some(c) = chars.find(|c| !is_name_char(*c)) {
        return Err(format!("character '{c}' not allowed in name '{name}'"));
    }
    Ok(())
}

/// Checks references in text or attribute values. `entities` is whether a DOCTYPE may declare
/// general entities.
fn check_references(raw: &str, entities: bool) -> Result<(), (usize, String)> {
    let mut from = 0;
    while let Some(i) = raw[from..].find('&') {
        let start = from + i;
        let after = &raw[start + 1..];
        let Some(j) = after.find(';') else {
            return Err((
                start,
                "'&' not followed by a reference ending in ';'".into(),
            ));
        };
        let name = &after[..j];
        if decode_reference(name).is_none() {
            if name.starts_with('#') {
                return Err((start, format!("invalid character reference '&{name};'")));
            }
            if !entities || check_name(name).is_err() {
                return Err((start, format!("undefined entity '&{name};'")));
            }
        }
        from = start + 1 + j + 1;
    }
    Ok(())
}

fn check_chars(raw: &str) -> Result<(), (usize, String)> {
    match raw.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        Some((i, c)) => Err((
            i,
            format!("character U+{:04X} is not allowed in XML", c as u32),
        )),
        None => Ok(()),
    }
}

struct Parser<'a> {
    text: &'a str,
    lines: LineIndex<'a>,
    stack: Vec<Element>,
    /// Sibling counts per open element, for error paths.
    path_counts: Vec<HashMap<String, usize>>,
    has_doctype: bool,
}

impl<'a> Parser<'a> {
    /// Path of the open elements plus, when given, the element being read.
    fn path_with(&self, current: Option<&str>) -> String {
        let mut s = String::new();
        let names = self.stack.iter().map(|e| e.name.as_str()).chain(current);
        for (i, name) in names.enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(name);
            // Open elements are not yet among their parent's children: count them in.
            let n = match i.checked_sub(1).and_then(|p| self.path_counts.get(p)) {
                Some(counts) => counts.get(name).copied().unwrap_or(0) + 1,
                None => 1,
            };
            if n > 1 {
                s.push_str(&format!("[{n}]"));
            }
        }
        s
    }

    fn path(&self) -> String {
        self.path_with(None)
    }

    fn err(&self, offset: usize, msg: impl Into<String>) -> Error {
        Error::syntax(msg, self.path(), self.lines.pos(offset))
    }

    /// Splits a start tag (`<name attrs>` or `<name attrs/>`) into an [`Element`].
    fn start_tag(&self, offset: usize, raw: &str, self_closing: bool) -> Result<Element, Error> {
        let end = if self_closing { 2 } else { 1 };
        let inner = raw
            .get(1..raw.len().saturating_sub(end))
            .ok_or_else(|| self.err(offset, "truncated tag"))?;
        let base = offset + 1;
        let name_end = inner
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(inner.len());
        let name = &inner[..name_end];
        check_name(name).map_err(|m| self.err(base, m))?;
        let err =
            |at: usize, m: String| Error::syntax(m, self.path_with(Some(name)), self.lines.pos(at));
        let mut el = Element::new(name);
        el.self_closing = self_closing;
        el.pos = self.lines.pos(offset);
        let b = inner.as_bytes();
        let mut i = name_end;
        loop {
            let ws_start = i;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= b.len() {
                el.tail = inner[ws_start..].to_string();
                break;
            }
            if i == ws_start {
                return Err(err(
                    base + i,
                    "attributes must be separated by whitespace".into(),
                ));
            }
            let name_start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
                i += 1;
            }
            let aname = &inner[name_start..i];
            check_name(aname).map_err(|m| err(base + name_start, m))?;
            let eq_start = i;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= b.len() || b[i] != b'=' {
                return Err(err(
                    base + name_start,
                    format!("attribute {aname} has no value"),
                ));
            }
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let quote = match b.get(i) {
                Some(q @ (b'\'' | b'"')) => *q,
                _ => {
                    return Err(self.err(
                        base + i,
                        format!("value of attribute {aname} is not quoted"),
                    ))
                }
            };
            let eq = &inner[eq_start..i];
            i += 1;
            let v_start = i;
            while i < b.len() && b[i] != quote {
                i += 1;
            }
            if i >= b.len() {
                return Err(self.err(
                    base + v_start,
                    format!("unterminated value of attribute {aname}"),
                ));
            }
            let value = &inner[v_start..i];
            i += 1;
            if let Some(p) = value.find('<') {
                return Err(self.err(
                    base + v_start + p,
                    format!("'<' in value of attribute {aname}"),
                ));
            }
            check_references(value, self.has_doctype)
                .map_err(|(p, m)| err(base + v_start + p, m))?;
            if el.attrs.iter().any(|a| a.name == aname) {
                return Err(err(
                    base + name_start,
                    format!("duplicate attribute {aname}"),
                ));
            }
            el.attrs.push(Attribute {
                name: aname.to_string(),
                raw_value: value.to_string(),
                quote: quote as char,
                pre: inner[ws_start..name_start].to_string(),
                eq: eq.to_string(),
                pos: self.lines.pos(base + name_start),
            });
        }
        Ok(el)
    }

    fn add(&mut self, node: Node, doc: &mut DocParts) {
        match self.stack.last_mut() {
            Some(parent) => {
                if let Node::Element(e) = &node {
                    if let Some(counts) = self.path_counts.last_mut() {
                        *counts.entry(e.name.clone()).or_insert(0) += 1;
                    }
                }
                parent.children.push(node)
            }
            None if doc.root.is_some() => doc.epilog.push(node),
            None => doc.prolog.push(node),
        }
    }
}

#[derive(Default)]
struct DocParts {
    prolog: Vec<Node>,
    root: Option<Element>,
    epilog: Vec<Node>,
}

fn indent_before(nodes: &[Node]) -> String {
    match nodes.last() {
        Some(Node::Text(t)) if t.is_whitespace() => match t.raw.rsplit_once('\n') {
            Some((_, ind)) => ind.to_string(),
            None => String::new(),
        },
        _ => String::new(),
    }
}

fn parse(input: &str) -> Result<Document, Error> {
    let (bom, text) = match input.strip_prefix('\u{feff}') {
        Some(t) => (true, t),
        None => (false, input),
    };
    let mut p = Parser {
        text,
        lines: LineIndex::new(text),
        stack: Vec::new(),
        path_counts: Vec::new(),
        has_doctype: false,
    };
    if let Err((i, m)) = check_chars(text) {
        return Err(p.err(i, m));
    }
    let mut reader = Reader::from_str(text);
    {
        let c = reader.config_mut();
        c.check_end_names = true;
        c.check_comments = true;
        // Only affects quick-xml's end-name check; the tree keeps the raw end tag anyway.
        c.trim_markup_names_in_closing_tags = true;
        c.expand_empty_elements = false;
        c.allow_unmatched_ends = false;
        c.allow_dangling_amp = false;
        c.trim_text(false);
    }
    let mut doc = DocParts::default();
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(start);
                return Err(p.err(at, e.to_string()));
            }
        };
        let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let raw = p
            .text
            .get(start..end)
            .ok_or_else(|| p.err(start, "tokenizer position out of range"))?;
        let pos = p.lines.pos(start);
        match ev {
            Event::Start(_) | Event::Empty(_) => {
                let self_closing = matches!(ev, Event::Empty(_));
                if p.stack.is_empty() && doc.root.is_some() {
                    return Err(p.err(start, "content after the root element"));
                }
                let mut el = p.start_tag(start, raw, self_closing)?;
                el.indent = match p.stack.last() {
                    Some(parent) => indent_before(&parent.children),
                    None => indent_before(&doc.prolog),
                };
                if p.stack.len() >= MAX_DEPTH {
                    return Err(p.err(
                        start,
                        format!("elements nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                if self_closing {
                    if p.stack.is_empty() {
                        doc.root = Some(el);
                    } else {
                        p.add(Node::Element(el), &mut doc);
                    }
                } else {
                    p.stack.push(el);
                    p.path_counts.push(HashMap::new());
                }
            }
            Event::End(_) => {
                let Some(mut el) = p.stack.pop() else {
                    return Err(p.err(start, "end tag without start tag"));
                };
                p.path_counts.pop();
                let end_inner = raw.get(2..raw.len().saturating_sub(1)).unwrap_or("");
                if end_inner != el.name {
                    if end_inner.trim_end() != el.name {
                        return Err(p.err(start, format!("expected </{}>", el.name)));
                    }
                    el.end_raw = Some(end_inner.to_string());
                }
                if p.stack.is_empty() {
                    doc.root = Some(el);
                } else {
                    p.add(Node::Element(el), &mut doc);
                }
            }
            Event::Text(_) | Event::GeneralRef(_) => {
                if p.stack.is_empty() {
                    let ws = raw
                        .bytes()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
                    if !ws {
                        return Err(p.err(start, "text outside the root element"));
                    }
                } else {
                    if let Some(i) = raw.find('<') {
                        return Err(p.err(start + i, "'<' in text"));
                    }
                    if let Some(i) = raw.find("]]>") {
                        return Err(p.err(start + i, "']]>' in text"));
                    }
                    check_references(raw, p.has_doctype).map_err(|(i, m)| p.err(start + i, m))?;
                }
                // quick-xml splits text at references; the tree keeps one text node.
                let parent_nodes = match p.stack.last_mut() {
                    Some(parent) => &mut parent.children,
                    None if doc.root.is_some() => &mut doc.epilog,
                    None => &mut doc.prolog,
                };
                if let Some(Node::Text(prev)) = parent_nodes.last_mut() {
                    prev.raw.push_str(raw);
                } else {
                    parent_nodes.push(Node::Text(Text {
                        raw: raw.to_string(),
                        pos,
                    }));
                }
            }
            Event::CData(_) => {
                if p.stack.is_empty() {
                    return Err(p.err(start, "CDATA outside the root element"));
                }
                p.add(
                    Node::CData(Markup {
                        raw: raw.into(),
                        pos,
                    }),
                    &mut doc,
                );
            }
            Event::Comment(_) => p.add(
                Node::Comment(Markup {
                    raw: raw.into(),
                    pos,
                }),
                &mut doc,
            ),
            Event::PI(ref pi) => {
                let target = String::from_utf8_lossy(pi.target()).to_string();
                if target.eq_ignore_ascii_case("xml") {
                    return Err(p.err(start, "XML declaration not at the start of the document"));
                }
                if check_name(&target).is_err() {
                    return Err(p.err(
                        start,
                        format!("invalid processing instruction target '{target}'"),
                    ));
                }
                p.add(
                    Node::Pi(Markup {
                        raw: raw.into(),
                        pos,
                    }),
                    &mut doc,
                )
            }
            Event::Decl(_) => {
                if start != 0 {
                    return Err(p.err(start, "XML declaration not at the start of the document"));
                }
                doc.prolog.push(Node::Decl(Markup {
                    raw: raw.into(),
                    pos,
                }));
            }
            Event::DocType(_) => {
                if !p.stack.is_empty() || doc.root.is_some() || p.has_doctype {
                    return Err(p.err(start, "DOCTYPE must come before the root element"));
                }
                p.has_doctype = true;
                doc.prolog.push(Node::DocType(Markup {
                    raw: raw.into(),
                    pos,
                }));
            }
            Event::Eof => {
                if let Some(open) = p.stack.last() {
                    let at = open.pos.offset;
                    return Err(p.err(at, format!("element <{}> is not closed", open.name)));
                }
                break;
            }
        }
    }
    let Some(root) = doc.root else {
        return Err(Error::syntax(
            "no root element",
            "",
            p.lines.pos(text.len()),
        ));
    };
    Ok(Document {
        bom,
        prolog: doc.prolog,
        root,
        epilog: doc.epilog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) {
        let doc = Document::parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
        assert_eq!(doc.to_xml(), s);
    }

    #[test]
    fn lossless_tricky_inputs() {
        round_trip("<a/>");
        round_trip("<a></a>");
        round_trip("<a ></a >");
        round_trip("<a x='1' y=\"2\"  z = '3'\n  w=\"&quot;'\"/>");
        round_trip(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n<a/>\n<!-- after -->\n",
        );
        round_trip("<a><![CDATA[ <not> & markup ]]></a>");
        round_trip("<a>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;</a>");
        round_trip("<a xmlns='urn:x' xmlns:p=\"urn:p\"><p:b p:c='1'/></a>");
        round_trip("<?pi data?><a><?inner x?></a>");
        round_trip("<!DOCTYPE a [<!ENTITY e \"value\">]><a>&e;</a>");
        round_trip("\u{feff}<a/>");
        round_trip("<a>\r\n  <b/>\r\n</a>\r\n");
        round_trip("<a>unicode é ✓ 𝄞</a>");
        round_trip("<a\tx='1'\n/>");
    }

    #[test]
    fn values_decoded() {
        let doc =
            Document::parse("<a v='&lt;&#x41;&amp;'>x&gt;<![CDATA[<y>]]>&#10;</a>").expect("parse");
        assert_eq!(doc.root().attr("v").as_deref(), Some("<A&"));
        assert_eq!(doc.root().text(), "x><y>\n");
        assert!(!doc.has_bom());
    }

    #[test]
    fn positions() {
        let doc = Document::parse("<a>\n  <b x='1'\n     y='2'/>\n</a>").expect("parse");
        let b = doc.root().child("b").expect("b");
        assert_eq!((b.pos.line, b.pos.column), (2, 3));
        let y = b.attribute("y").expect("y");
        assert_eq!((y.pos.line, y.pos.column), (3, 6));
    }

    fn err(s: &str) -> Error {
        match Document::parse(s) {
            Ok(_) => panic!("accepted: {s}"),
            Err(e) => e,
        }
    }

    #[test]
    fn malformed_rejected_with_place() {
        let e =
            err("<domain>\n  <devices>\n    <disk/>\n    <disk><target dev='a' dev='b'/></disk>\n");
        assert_eq!(e.path, "domain/devices/disk[2]/target");
        let pos = e.pos.expect("pos");
        assert_eq!(pos.line, 4);
        assert!(e.to_string().contains("duplicate attribute dev"), "{e}");
        assert!(e.to_string().starts_with("line 4, column "), "{e}");

        let e = err("<a>\n<b></c>\n</a>");
        assert_eq!(e.pos.map(|p| p.line), Some(2));
        let e = err("<a>");
        assert!(e.to_string().contains("not closed"), "{e}");
        for bad in [
            "",
            "text",
            "<a/><b/>",
            "<a/>x",
            "<a x=1/>",
            "<a x='<'/>",
            "<a>&undefined;</a>",
            "<a>&#0;</a>",
            "<a x='1'y='2'/>",
            "<a>]]></a>",
            "<?xml version='1.0'?><?xml version='1.0'?><a/>",
            " <?xml version='1.0'?><a/>",
            "<a>\u{1}</a>",
            "<1a/>",
            "<a><!-- -- --></a>",
            "<a x/>",
            "<a x='1/>",
            "</a>",
            "<a></a></a>",
        ] {
            assert!(Document::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn set_attr_keeps_quote_and_place() {
        let mut doc = Document::parse("<a x=\"1\" y='2'/>").expect("parse");
        doc.root_mut().set_attr("x", "it's");
        doc.root_mut().set_attr("z", "3");
        assert_eq!(doc.to_xml(), "<a x=\"it's\" y='2' z=\"3\"/>");
        doc.root_mut().remove_attr("y");
        assert_eq!(doc.to_xml(), "<a x=\"it's\" z=\"3\"/>");
        doc.root_mut().set_attr("x", "say \"hi\" <&>\n");
        assert_eq!(doc.root().attr("x").as_deref(), Some("say \"hi\" <&>\n"));
        let again = Document::parse(&doc.to_xml()).expect("reparse");
        assert_eq!(again.root().attr("x").as_deref(), Some("say \"hi\" <&>\n"));
    }

    const ORDER: &[&str] = &["name", "memory", "vcpu", "os", "devices"];

    #[test]
    fn insertion_follows_order_and_indentation() {
        let mut doc = Document::parse(
            "<d>\n    <name>x</name>\n    <os>\n        <type>hvm</type>\n    </os>\n</d>\n",
        )
        .expect("parse");
        let style = doc.style();
        assert_eq!(style.indent_unit, "    ");
        doc.root_mut()
            .insert_ordered(Element::new("vcpu").with_text("2"), ORDER, &style);
        doc.root_mut()
            .insert_ordered(Element::new("memory").with_text("1"), ORDER, &style);
        doc.root_mut().insert_ordered(
            Element::new("devices").with_child(Element::new("disk").with_attr("type", "file")),
            ORDER,
            &style,
        );
        assert_eq!(
            doc.to_xml(),
            "<d>\n    <name>x</name>\n    <memory>1</memory>\n    <vcpu>2</vcpu>\n    <os>\n        <type>hvm</type>\n    </os>\n    <devices>\n        <disk type='file'/>\n    </devices>\n</d>\n"
        );
    }

    #[test]
    fn insertion_before_first_and_into_empty() {
        let style = Style::default();
        let mut doc = Document::parse("<d>\n  <os/>\n</d>").expect("parse");
        doc.root_mut()
            .insert_ordered(Element::new("name").with_text("n"), ORDER, &style);
        assert_eq!(doc.to_xml(), "<d>\n  <name>n</name>\n  <os/>\n</d>");
        let os = doc.root_mut().child_mut("os").expect("os");
        os.insert_ordered(Element::new("type").with_text("hvm"), &["type"], &style);
        assert_eq!(
            doc.to_xml(),
            "<d>\n  <name>n</name>\n  <os>\n    <type>hvm</type>\n  </os>\n</d>"
        );
    }

    #[test]
    fn crlf_documents_get_crlf() {
        let mut doc = Document::parse("<d>\r\n\t<name>x</name>\r\n</d>\r\n").expect("parse");
        let style = doc.style();
        assert_eq!(style.newline, "\r\n");
        assert_eq!(style.indent_unit, "\t");
        doc.root_mut()
            .insert_ordered(Element::new("vcpu").with_text("1"), ORDER, &style);
        assert_eq!(
            doc.to_xml(),
            "<d>\r\n\t<name>x</name>\r\n\t<vcpu>1</vcpu>\r\n</d>\r\n"
        );
    }

    #[test]
    fn remove_child_takes_its_indentation() {
        let mut doc = Document::parse("<d>\n  <a/>\n  <b/>\n  <a/>\n</d>").expect("parse");
        assert!(doc.root_mut().remove_child("a", 1).is_some());
        assert_eq!(doc.to_xml(), "<d>\n  <a/>\n  <b/>\n</d>");
        assert_eq!(doc.root_mut().remove_children_named("a"), 1);
        assert_eq!(doc.to_xml(), "<d>\n  <b/>\n</d>");
    }

    #[test]
    fn namespaces_resolve() {
        let doc =
            Document::parse("<a xmlns:p='urn:p'><b xmlns:p='urn:q'><p:c/></b></a>").expect("parse");
        let a = doc.root();
        let b = a.child("b").expect("b");
        let c = b.child("p:c").expect("c");
        assert_eq!(resolve_prefix(&[a, b, c], "p").as_deref(), Some("urn:q"));
        assert_eq!(resolve_prefix(&[a], "p").as_deref(), Some("urn:p"));
        assert_eq!(resolve_prefix(&[a], "zz"), None);
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        round_trip(&ok);
        let deep = 200_000;
        let bad = format!("{}{}", "<a>".repeat(deep), "</a>".repeat(deep));
        let e = Document::parse(&bad).expect_err("too deep");
        assert!(e.to_string().contains("deeper than 256"), "{}", e.kind);
        assert!(Document::parse(&"<a>".repeat(deep)).is_err());
    }

    #[test]
    fn non_utf8_is_an_error() {
        let e = Document::parse_bytes(b"<a>\n\xff</a>").expect_err("latin1");
        assert!(matches!(e.kind, ErrorKind::Encoding(_)));
        assert_eq!(e.pos.map(|p| p.line), Some(2));
    }
}
