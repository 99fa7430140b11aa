//! Fetches UCI's Online Retail II zip, resumably, and checks that it holds the workbook with both sheets.
//!
//! The download goes to `<dest>.part`; an interrupted transfer (a dropped connection, or a killed process)
//! is resumed with an HTTP range request from the bytes already on disk. Only a verified zip is renamed to
//! its final name.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use calamine::{Reader, Xlsx};
use indicatif::ProgressBar;

use crate::{DatasetError, Result, read::read_zip_entry};

/// Where UCI publishes the dataset.
pub const UCI_URL: &str = "https://archive.ics.uci.edu/static/public/502/online+retail+ii.zip";
/// The file name the download is saved under.
pub const ZIP_FILE_NAME: &str = "online_retail_II.zip";
/// The sheets UCI's workbook has.
pub const UCI_SHEETS: [&str; 2] = ["Year 2009-2010", "Year 2010-2011"];

/// What to fetch and where to put it.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// The URL of the zip.
    pub url: String,
    /// The final path of the zip.
    pub dest: PathBuf,
    /// How many connections to try before giving up (each resumes where the last one stopped).
    pub attempts: u32,
    /// Longest wait for any one read from the server.
    pub read_timeout: Duration,
}

impl DownloadRequest {
    /// UCI's zip into `dir`, with defaults for retries and timeouts.
    pub fn uci(dir: &Path) -> Self {
        DownloadRequest {
            url: UCI_URL.to_string(),
            dest: dir.join(ZIP_FILE_NAME),
            attempts: 5,
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    /// The verified zip.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Bytes that were on disk already and were not fetched again (a resumed download).
    pub resumed_bytes: u64,
    /// Connections made (0 when the file was already there and valid).
    pub connections: u32,
    /// What the zip holds.
    pub contents: ZipContents,
}

/// The workbook found inside a zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipContents {
    /// The workbook's name inside the zip.
    pub workbook: String,
    /// Its sheets, in order.
    pub sheets: Vec<String>,
}

/// Downloads `request.url` to `request.dest`, resuming a partial download, then verifies the zip.
/// A file already at `dest` that verifies is kept and nothing is fetched.
pub fn download(request: &DownloadRequest, progress: &ProgressBar) -> Result<DownloadReport> {
    let fail = |reason: String| DatasetError::Download {
        url: request.url.clone(),
        reason,
    };
    if request.dest.exists()
        && let Ok(contents) = verify_zip(&request.dest)
    {
        let bytes = std::fs::metadata(&request.dest)
            .map_err(DatasetError::io(&request.dest))?
            .len();
        return Ok(DownloadReport {
            path: request.dest.clone(),
            bytes,
            resumed_bytes: bytes,
            connections: 0,
            contents,
        });
    }
    if let Some(dir) = request.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(DatasetError::io(dir))?;
    }
    let part = part_path(&request.dest);
    let resumed_bytes = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(request.read_timeout))
        .build()
        .into();
    let mut connections = 0;
    loop {
        connections += 1;
        let last_error = match fetch_once(&agent, request, &part, progress) {
            Ok(Fetch::Complete) => break,
            Ok(Fetch::Incomplete(reason)) => reason,
            Err(Permanent(reason)) => return Err(fail(reason)),
        };
        if connections >= request.attempts.max(1) {
            return Err(fail(format!(
                "gave up after {connections} connections: {last_error}; run again to resume"
            )));
        }
        progress.set_message(format!("resuming ({last_error})"));
        std::thread::sleep(Duration::from_millis(200 * u64::from(connections)));
    }
    let contents = match verify_zip(&part) {
        Ok(contents) => contents,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(fail(format!(
                "the downloaded file is not UCI's zip ({e}); removed it"
            )));
        }
    };
    std::fs::rename(&part, &request.dest).map_err(DatasetError::io(&request.dest))?;
    let bytes = std::fs::metadata(&request.dest)
        .map_err(DatasetError::io(&request.dest))?
        .len();
    Ok(DownloadReport {
        path: request.dest.clone(),
        bytes,
        resumed_bytes,
        connections,
        contents,
    })
}

/// The partial file a download writes before it is verified.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

enum Fetch {
    Complete,
    Incomplete(String),
}

struct Permanent(String);

/// One connection: asks for the bytes after what `part` holds and appends them.
fn fetch_once(
    agent: &ureq::Agent,
    request: &DownloadRequest,
    part: &Path,
    progress: &ProgressBar,
) -> std::result::Result<Fetch, Permanent> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut call = agent
        .get(&request.url)
        .header("Accept-Encoding", "identity");
    if have > 0 {
        call = call.header("Range", format!("bytes={have}-"));
    }
    let mut response = match call.call() {
        Ok(r) => r,
        Err(e) => return Ok(Fetch::Incomplete(e.to_string())),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_length = header("content-length").and_then(|v| v.parse::<u64>().ok());
    let (start, total) = match status {
        206 => {
            let range = header("content-range").unwrap_or_default();
            let (start, total) = parse_content_range(&range)
                .ok_or_else(|| Permanent(format!("bad Content-Range {range:?}")))?;
            if start != have {
                return Err(Permanent(format!(
                    "asked for bytes from {have}, got from {start}"
                )));
            }
            (start, total.or(content_length.map(|l| l + start)))
        }
        200 => (0, content_length), // the server ignored the range: start over
        416 if have > 0 => return Ok(Fetch::Complete), // nothing after what we have
        500..=599 => return Ok(Fetch::Incomplete(format!("HTTP {status}"))),
        _ => return Err(Permanent(format!("HTTP {status}"))),
    };
    let io = |e: std::io::Error| Permanent(format!("{}: {e}", part.display()));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .map_err(io)?;
    if let Some(total) = total {
        progress.set_length(total);
    }
    progress.set_position(start);
    let mut body = response.body_mut().as_reader();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written = start;
    loop {
        match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                file.write_all(&buffer[..n]).map_err(io)?;
                written += n as u64;
                progress.set_position(written);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(io)?;
                return Ok(Fetch::Incomplete(format!(
                    "connection lost after {written} bytes: {e}"
                )));
            }
        }
    }
    file.flush().map_err(io)?;
    match total {
        Some(total) if written < total => Ok(Fetch::Incomplete(format!(
            "connection closed after {written} of {total} bytes"
        ))),
        _ => Ok(Fetch::Complete),
    }
}

/// Parses `bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Checks that `path` is a readable zip holding an `.xlsx` workbook with both of UCI's sheets.
pub fn verify_zip(path: &Path) -> Result<ZipContents> {
    let (workbook, bytes) = read_zip_entry(path)?;
    if !workbook.to_ascii_lowercase().ends_with(".xlsx") {
        return Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: format!("the zip holds {workbook}, not an .xlsx workbook"),
        });
    }
    let xlsx: Xlsx<_> =
        Xlsx::new(std::io::Cursor::new(bytes)).map_err(|source| DatasetError::Xlsx {
            source_name: format!("{}!{workbook}", path.display()),
            source,
        })?;
    let sheets = xlsx.sheet_names();
    if let Some(missing) = UCI_SHEETS
        .iter()
        .find(|s| !sheets.iter().any(|have| have == *s))
    {
        return Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: format!("workbook {workbook} has no sheet {missing:?} (it has {sheets:?})"),
        });
    }
    Ok(ZipContents { workbook, sheets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 5-9/10"), None);
    }

    #[test]
    fn part_file_sits_beside_the_zip() {
        assert_eq!(
            part_path(Path::new("data/raw/x.zip")),
            PathBuf::from("data/raw/x.zip.part")
        );
    }
}
