//! Bounded line splitting for everything opsdeck reads line by line from a process or a
//! stream (step output, pod logs, the ArgoCD watch): a line keeps at most a fixed number of
//! bytes and the rest is counted and dropped, so a peer that never sends a newline costs a
//! fixed amount of memory, never the size of what it sent.

/// The bound for step output and pod logs.
pub const MAX_LINE: usize = 64 * 1024;

/// One line as kept: at most the bound's bytes, without its newline, and how many were dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutLine {
    pub bytes: Vec<u8>,
    pub dropped: u64,
}

impl CutLine {
    /// The line as text: invalid UTF-8 replaced, a trailing `\r` removed, and the marker
    /// `…[line cut: N bytes dropped]` when it was cut.
    pub fn into_text(self) -> String {
        let mut bytes = self.bytes;
        if self.dropped > 0 {
            // Do not end on half a character because of where the cut fell.
            if let Err(e) = std::str::from_utf8(&bytes)
                && e.error_len().is_none()
            {
                bytes.truncate(e.valid_up_to());
            }
        } else if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let mut text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if self.dropped > 0 {
            text.push_str(&cut_marker(self.dropped));
        }
        text
    }
}

/// What is appended to a cut line.
pub fn cut_marker(dropped: u64) -> String {
    format!(" …[line cut: {dropped} bytes dropped]")
}

/// Splits a byte stream into lines of at most `max` bytes; feed it what arrives, in order.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    current: Vec<u8>,
    dropped: u64,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max,
            current: Vec::new(),
            dropped: 0,
        }
    }

    /// Takes bytes from `buf` up to and including its first newline. Returns how many bytes were
    /// taken and, when a newline was among them, the line it ended.
    pub fn take(&mut self, buf: &[u8]) -> (usize, Option<CutLine>) {
        let (part, used, ended) = match find_newline(buf) {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = self.max.saturating_sub(self.current.len());
        let kept = part.len().min(room);
        self.current.extend_from_slice(&part[..kept]);
        self.dropped += (part.len() - kept) as u64;
        (used, if ended { Some(self.line()) } else { None })
    }

    /// Every line that `buf` completes, in order.
    pub fn feed(&mut self, mut buf: &[u8], mut on_line: impl FnMut(CutLine)) {
        while !buf.is_empty() {
            let (used, line) = self.take(buf);
            if let Some(line) = line {
                on_line(line);
            }
            buf = &buf[used..];
        }
    }

    /// The last line at the end of the stream, if it had no newline.
    pub fn finish(&mut self) -> Option<CutLine> {
        (!self.current.is_empty() || self.dropped > 0).then(|| self.line())
    }

    fn line(&mut self) -> CutLine {
        let line = CutLine {
            bytes: std::mem::take(&mut self.current),
            dropped: self.dropped,
        };
        self.dropped = 0;
        line
    }
}

fn find_newline(buf: &[u8]) -> Option<usize> {
    if buf.is_empty() {
        return None;
    }
    // libc's memchr: this runs over every byte a step prints, and a debug build's own loop
    // would make 300 MB of output take many seconds.
    // SAFETY: the pointer and length come from one live slice.
    let at = unsafe { libc::memchr(buf.as_ptr().cast(), b'\n' as i32, buf.len()) };
    (!at.is_null()).then(|| at as usize - buf.as_ptr() as usize)
}

/// Reads the next line of `reader`, bounded by `splitter`'s limit; `None` at the end.
pub async fn next_line<R>(
    reader: &mut R,
    splitter: &mut LineSplitter,
) -> std::io::Result<Option<CutLine>>
where
    R: futures::AsyncBufRead + Unpin,
{
    use futures::AsyncBufReadExt;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(splitter.finish());
        }
        let (used, line) = splitter.take(buf);
        reader.consume_unpin(used);
        if line.is_some() {
            return Ok(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l.into_text()));
        }
        out.extend(s.finish().map(CutLine::into_text));
        out
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        assert_eq!(
            split(100, &[b"ab", b"c\nde", b"f\r\n\n", b"tail"]),
            ["abc", "def", "", "tail"]
        );
    }

    #[test]
    fn an_over_long_line_is_cut_with_the_count_of_dropped_bytes() {
        assert_eq!(
            split(4, &[b"abcdef", b"gh\nok\nxyz"]),
            [
                format!("abcd{}", cut_marker(4)),
                "ok".to_string(),
                "xyz".to_string()
            ]
        );
    }

    #[test]
    fn a_cut_never_ends_on_half_a_character() {
        // "é" is two bytes: a cut after 3 bytes would split the second one.
        assert_eq!(
            split(3, &["aéé\n".as_bytes()]),
            [format!("aé{}", cut_marker(2))]
        );
    }

    #[tokio::test]
    async fn a_huge_line_from_a_reader_costs_only_the_bound() {
        let mut data = vec![b'x'; 10 * MAX_LINE];
        data.extend_from_slice(b"\nnext\n");
        let mut reader = futures::io::BufReader::new(futures::io::Cursor::new(data));
        let mut s = LineSplitter::new(MAX_LINE);
        let first = next_line(&mut reader, &mut s).await.unwrap().unwrap();
        assert_eq!(first.bytes.len(), MAX_LINE);
        assert_eq!(first.dropped, 9 * MAX_LINE as u64);
        let second = next_line(&mut reader, &mut s).await.unwrap().unwrap();
        assert_eq!(second.into_text(), "next");
        assert!(next_line(&mut reader, &mut s).await.unwrap().is_none());
    }
}
