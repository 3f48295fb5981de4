//! User-facing diagnostics: one error type for everything the user can fix, pointing into their
//! files (file:line:col, the offending text, a hint) and carrying the exit code class.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{LabeledSpan, SourceCode};

/// A loaded text file, shared by every node and diagnostic that points into it.
#[derive(Debug)]
pub struct Source {
    /// The path as the user gave it (relative paths stay relative in messages).
    pub path: PathBuf,
    pub text: String,
    /// Decrypted from a vault: diagnostics name the place but never quote the text.
    pub secret: bool,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            path: path.into(),
            text: text.into(),
            secret: false,
        })
    }

    /// The plaintext of a vault-encrypted file.
    pub fn decrypted(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            path: path.into(),
            text: text.into(),
            secret: true,
        })
    }

    /// Line and column (both 1-based) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
        (line, col)
    }
}

/// A place in a source file.
#[derive(Clone)]
pub struct Loc {
    pub src: Arc<Source>,
    /// Byte offset and length of the located text.
    pub offset: usize,
    pub len: usize,
    /// 1-based.
    pub line: usize,
    pub col: usize,
}

impl Loc {
    pub fn path(&self) -> &Path {
        &self.src.path
    }
    /// Directory of the file this location is in (for relative paths inside it).
    pub fn dir(&self) -> PathBuf {
        self.src
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

impl fmt::Debug for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.src.path.display(), self.line, self.col)
    }
}

/// What kind of problem, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagKind {
    /// Bad YAML, templates, unknown modules or keywords, bad arguments: the user's files.
    Input,
    /// Bad command-line usage.
    Usage,
    /// A bug or an environment problem mixop cannot blame on the input.
    Internal,
}

#[derive(Clone)]
pub struct Diag {
    pub kind: DiagKind,
    pub message: String,
    pub loc: Option<Loc>,
    pub label: Option<String>,
    pub hint: Option<String>,
}

pub type Result<T, E = Diag> = std::result::Result<T, E>;

impl Diag {
    pub fn input(message: impl Into<String>) -> Diag {
        Diag {
            kind: DiagKind::Input,
            message: message.into(),
            loc: None,
            label: None,
            hint: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Diag {
        Diag {
            kind: DiagKind::Usage,
            ..Diag::input(message)
        }
    }
    pub fn internal(message: impl Into<String>) -> Diag {
        Diag {
            kind: DiagKind::Internal,
            ..Diag::input(message)
        }
    }
    /// A file the user named is missing: invalid input (exit 3) that names the path.
    pub fn no_such_file(what: &str, path: &Path) -> Diag {
        Diag::input(format!("{what} `{}`: no such file", path.display()))
    }
    pub fn at(mut self, loc: &Loc) -> Diag {
        if self.loc.is_none() {
            self.loc = Some(loc.clone());
        }
        self
    }
    pub fn at_opt(self, loc: Option<&Loc>) -> Diag {
        match loc {
            Some(l) => self.at(l),
            None => self,
        }
    }
    pub fn label(mut self, label: impl Into<String>) -> Diag {
        self.label = Some(label.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Diag {
        self.hint = Some(hint.into());
        self
    }
    /// Adds context in front of the message ("task 'x': ...").
    pub fn context(mut self, ctx: impl fmt::Display) -> Diag {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl fmt::Debug for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Diag {}

/// Adapter so miette can read our shared source text.
struct SharedSource(Arc<Source>);

impl SourceCode for SharedSource {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> std::result::Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self
            .0
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.0.path.display().to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

impl miette::Diagnostic for Diag {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        None
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h.clone()) as Box<dyn fmt::Display>)
    }
}

impl Diag {
    /// Renders the diagnostic for a terminal (or plain text when `color` is false): the message
    /// with file:line:col, the offending source line with a marker, and the hint.
    pub fn render(&self, color: bool) -> String {
        let report = RenderedDiag {
            diag: self,
            source: self
                .loc
                .as_ref()
                .filter(|l| !l.src.secret)
                .map(|l| SharedSource(l.src.clone())),
        };
        let handler = if color {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
        } else {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        };
        let mut out = String::new();
        if handler.render_report(&mut out, &report).is_err() {
            return format!("error: {self}\n");
        }
        out
    }
}

struct RenderedDiag<'a> {
    diag: &'a Diag,
    source: Option<SharedSource>,
}

impl fmt::Debug for RenderedDiag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.diag, f)
    }
}
impl fmt::Display for RenderedDiag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.diag, f)
    }
}
impl std::error::Error for RenderedDiag<'_> {}

impl miette::Diagnostic for RenderedDiag<'_> {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let loc = self.diag.loc.as_ref()?;
        let len = loc
            .len
            .max(1)
            .min(loc.src.text.len().saturating_sub(loc.offset).max(1));
        let label = self.diag.label.clone();
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label,
            loc.offset.min(loc.src.text.len()),
            len,
        ))))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        miette::Diagnostic::help(self.diag)
    }
}
