//! Questions for a user who ran a program with no flags, answered at a terminal or line by line
//! from piped standard input. Every question names the flag that answers it instead.

use anyhow::{bail, Result};
use std::io::{BufRead, Write};

/// Asks on `output` and reads answers from `input`.
pub struct Prompter<R, W> {
    input: R,
    output: W,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    pub fn new(input: R, output: W) -> Self {
        Prompter { input, output }
    }

    /// Tells the user something between questions (a typed answer that did not work out).
    pub fn say(&mut self, line: &str) -> Result<()> {
        writeln!(self.output, "{line}")?;
        Ok(())
    }

    /// Asks `question` until `parse` accepts the answer. A blank answer is passed to `parse` as
    /// `default`. At the end of input, fails naming `flag`.
    pub fn ask<T>(
        &mut self,
        question: &str,
        default: &str,
        shown_default: &str,
        flag: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T> {
        let mut line = String::new();
        loop {
            write!(self.output, "{question} [{shown_default}]: ")?;
            self.output.flush()?;
            line.clear();
            if self.input.read_line(&mut line)? == 0 {
                writeln!(self.output)?;
                bail!("no answer for \"{question}\" on standard input; pass {flag} instead");
            }
            let answer = match line.trim() {
                "" => default,
                text => text,
            };
            match parse(answer) {
                Ok(value) => return Ok(value),
                Err(why) => writeln!(self.output, "{why}")?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_ip, parse_port};
    use std::io::Cursor;

    #[test]
    fn blank_takes_the_default_and_invalid_is_asked_again() {
        let mut out = Vec::new();
        let mut prompter = Prompter::new(Cursor::new("\n999.1.1.1\nabc\n70000\n8000\n"), &mut out);
        let ip = prompter
            .ask(
                "IP to listen on",
                "0.0.0.0",
                "0.0.0.0",
                "--listen",
                parse_ip,
            )
            .unwrap();
        let port = prompter
            .ask("port", "9999", "9999", "--listen", parse_port)
            .unwrap();
        assert_eq!(ip.to_string(), "0.0.0.0");
        assert_eq!(port, 8000);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "IP to listen on [0.0.0.0]: port [9999]: \
             invalid port \"999.1.1.1\": must be 1-65535\n\
             port [9999]: invalid port \"abc\": must be 1-65535\n\
             port [9999]: invalid port \"70000\": must be 1-65535\nport [9999]: "
        );
    }

    #[test]
    fn end_of_input_names_the_flag() {
        let mut prompter = Prompter::new(Cursor::new("10.0.0.1\n"), Vec::new());
        prompter
            .ask("sender IP", "127.0.0.1", "127.0.0.1", "--connect", parse_ip)
            .unwrap();
        let err = prompter
            .ask("sender port", "9999", "9999", "--connect", parse_port)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no answer for \"sender port\" on standard input; pass --connect instead"
        );
    }
}
