//! `sub -F TEMPLATE`: parsed once at start-up (so a typo is a usage error, not a surprise at the
//! first message), rendered per message without allocating.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    Topic,
    Payload,
    Qos,
    Retain,
    Len,
    Time,
    Hex,
    Props,
}

pub const PLACEHOLDERS: &str = "{topic} {payload} {qos} {retain} {len} {time} {hex} {props}";

pub fn parse(template: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut lit = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => {
                            return Err(format!(
                                "-F template has an unclosed '{{': write {{{{ for a literal brace; placeholders are {PLACEHOLDERS}"
                            ))
                        }
                    }
                }
                let token = match name.as_str() {
                    "topic" => Token::Topic,
                    "payload" => Token::Payload,
                    "qos" => Token::Qos,
                    "retain" => Token::Retain,
                    "len" => Token::Len,
                    "time" => Token::Time,
                    "hex" => Token::Hex,
                    "props" => Token::Props,
                    other => {
                        return Err(format!(
                            "-F template has an unknown placeholder {{{other}}}: use {PLACEHOLDERS}"
                        ))
                    }
                };
                if !lit.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut lit)));
                }
                tokens.push(token);
            }
            '}' => {
                return Err("-F template has a lone '}': write }} for a literal brace".to_string())
            }
            '\\' => match chars.next() {
                Some('n') => lit.push('\n'),
                Some('t') => lit.push('\t'),
                Some('\\') => lit.push('\\'),
                Some('0') => lit.push('\0'),
                Some(other) => {
                    lit.push('\\');
                    lit.push(other);
                }
                None => lit.push('\\'),
            },
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        tokens.push(Token::Literal(lit));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_template() {
        let t = parse("Received `{payload}` from `{topic}` topic").unwrap();
        assert_eq!(
            t,
            vec![
                Token::Literal("Received `".into()),
                Token::Payload,
                Token::Literal("` from `".into()),
                Token::Topic,
                Token::Literal("` topic".into()),
            ]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            parse("{{x}}\\t{len}\\n").unwrap(),
            vec![
                Token::Literal("{x}\t".into()),
                Token::Len,
                Token::Literal("\n".into())
            ]
        );
    }

    #[test]
    fn errors_name_the_fix() {
        assert!(parse("{paylod}")
            .unwrap_err()
            .contains("unknown placeholder {paylod}"));
        assert!(parse("{topic").unwrap_err().contains("unclosed"));
        assert!(parse("a}b").unwrap_err().contains("lone '}'"));
    }
}
