//! `download` against a local HTTP server: a full download, one cut mid-body and resumed with a range
//! request, one resumed from a partial file left by a killed run, and the failures.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dataset::download::{DownloadRequest, download, part_path};
use indicatif::ProgressBar;

/// What the server does with a request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Serve the body (honouring `Range`).
    Serve,
    /// Announce the whole body, send `n` bytes of it, then drop the connection.
    CutAfter(usize),
    /// Answer with this status and no body.
    Status(u16),
}

/// A one-file HTTP server on 127.0.0.1; each connection takes the next behaviour (the last one
/// repeats). It records the `Range` header of every request.
struct Server {
    url: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn serve(body: Vec<u8>, behaviours: Vec<Behaviour>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/static/public/502/online+retail+ii.zip",
        listener.local_addr().unwrap()
    );
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(20).enumerate() {
            let Ok(stream) = stream else { continue };
            let behaviour = behaviours[i.min(behaviours.len() - 1)];
            let _ = respond(stream, &body, behaviour, &seen);
        }
    });
    Server { url, ranges }
}

fn respond(
    mut stream: TcpStream,
    body: &[u8],
    behaviour: Behaviour,
    seen: &Mutex<Vec<Option<String>>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    seen.lock().unwrap().push(range.clone());
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match (behaviour, start) {
        (Behaviour::Status(code), _) => {
            write!(
                stream,
                "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
        (Behaviour::CutAfter(n), _) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body[..n])?;
            stream.flush()?;
            stream.shutdown(std::net::Shutdown::Both)?;
        }
        (Behaviour::Serve, Some(start)) => {
            let end = body.len() - 1;
            write!(
                stream,
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\nConnection: close\r\n\r\n",
                body.len() - start,
                body.len()
            )?;
            stream.write_all(&body[start..])?;
        }
        (Behaviour::Serve, None) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
    }
    stream.flush()
}

fn request(server: &Server, dir: &std::path::Path) -> DownloadRequest {
    DownloadRequest {
        url: server.url.clone(),
        attempts: 3,
        read_timeout: Duration::from_secs(5),
        ..DownloadRequest::uci(dir)
    }
}

fn uci_zip() -> Vec<u8> {
    zip_of("online_retail_II.xlsx", &uci_workbook())
}

#[test]
fn downloads_and_verifies_the_zip() {
    let body = uci_zip();
    let server = serve(body.clone(), vec![Behaviour::Serve]);
    let dir = tempfile::tempdir().unwrap();
    let report = download(&request(&server, dir.path()), &ProgressBar::hidden()).unwrap();
    assert_eq!(std::fs::read(&report.path).unwrap(), body);
    assert_eq!(report.connections, 1);
    assert_eq!(report.resumed_bytes, 0);
    assert_eq!(report.contents.workbook, "online_retail_II.xlsx");
    assert_eq!(report.contents.sheets, ["Year 2009-2010", "Year 2010-2011"]);
    assert!(!part_path(&report.path).exists());

    // A second run finds the valid file and makes no request.
    let again = download(&request(&server, dir.path()), &ProgressBar::hidden()).unwrap();
    assert_eq!(again.connections, 0);
    assert_eq!(server.ranges.lock().unwrap().len(), 1);
}

#[test]
fn a_connection_cut_mid_body_is_resumed_with_a_range_request() {
    let body = uci_zip();
    let cut = body.len() / 3;
    let server = serve(
        body.clone(),
        vec![Behaviour::CutAfter(cut), Behaviour::Serve],
    );
    let dir = tempfile::tempdir().unwrap();
    let report = download(&request(&server, dir.path()), &ProgressBar::hidden()).unwrap();
    assert_eq!(std::fs::read(&report.path).unwrap(), body);
    assert_eq!(report.connections, 2);
    assert_eq!(
        *server.ranges.lock().unwrap(),
        [None, Some(format!("bytes={cut}-"))]
    );
}

#[test]
fn a_partial_file_from_a_killed_run_is_resumed() {
    let body = uci_zip();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(body.clone(), vec![Behaviour::Serve]);
    let request = request(&server, dir.path());
    let have = body.len() / 2;
    std::fs::write(part_path(&request.dest), &body[..have]).unwrap();
    let report = download(&request, &ProgressBar::hidden()).unwrap();
    assert_eq!(std::fs::read(&report.path).unwrap(), body);
    assert_eq!(report.resumed_bytes, have as u64);
    assert_eq!(
        *server.ranges.lock().unwrap(),
        [Some(format!("bytes={have}-"))]
    );
}

#[test]
fn a_zip_without_both_sheets_is_rejected_and_removed() {
    let one_sheet = zip_of(
        "online_retail_II.xlsx",
        &workbook(&[("Year 2010-2011", SHEET_2)]),
    );
    let server = serve(one_sheet, vec![Behaviour::Serve]);
    let dir = tempfile::tempdir().unwrap();
    let request = request(&server, dir.path());
    let error = download(&request, &ProgressBar::hidden())
        .unwrap_err()
        .to_string();
    assert!(error.contains("Year 2009-2010"), "{error}");
    assert!(!request.dest.exists());
    assert!(!part_path(&request.dest).exists());
}

#[test]
fn http_errors_are_reported() {
    let server = serve(Vec::new(), vec![Behaviour::Status(404)]);
    let dir = tempfile::tempdir().unwrap();
    let error = download(&request(&server, dir.path()), &ProgressBar::hidden())
        .unwrap_err()
        .to_string();
    assert!(error.contains("HTTP 404"), "{error}");

    // A server that keeps failing is given up on after the set number of connections.
    let server = serve(Vec::new(), vec![Behaviour::Status(503)]);
    let error = download(&request(&server, dir.path()), &ProgressBar::hidden())
        .unwrap_err()
        .to_string();
    assert!(error.contains("gave up after 3 connections"), "{error}");
}
