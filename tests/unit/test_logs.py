"""pyctrd.oci.conmonlog: conmon's k8s-file lines → records, and the file reader."""

import asyncio
import os

import pytest

from pyctrd.oci.conmonlog import LogConverter, LogFile, stream_log

T1 = b"2024-05-01T10:00:00.000000001+00:00"
T2 = b"2024-05-01T10:00:00.000000002+00:00"
T3 = b"2024-05-01T10:00:00.000000003+00:00"


def test_full_lines_keep_time_and_stream():
    conv = LogConverter()
    out = conv.feed(T1 + b" stdout F hello\n" + T2 + b" stderr F oops\n")
    assert out == T1 + b" stdout hello\n" + T2 + b" stderr oops\n"


def test_empty_text():
    assert LogConverter().feed(T1 + b" stdout F \n") == T1 + b" stdout \n"
    assert LogConverter().feed(T1 + b" stdout F\n") == T1 + b" stdout \n"


def test_text_keeps_its_spaces_and_bytes():
    line = b"  a  b \x1b[6n \xff"
    assert LogConverter().feed(T1 + b" stdout F " + line + b"\n") == \
        T1 + b" stdout " + line + b"\n"


def test_partials_join_into_one_record_timed_at_its_start():
    conv = LogConverter()
    assert conv.feed(T1 + b" stdout P aaa\n") == b""
    assert conv.feed(T2 + b" stdout P bbb\n") == b""
    assert conv.feed(T3 + b" stdout F ccc\n") == T1 + b" stdout aaabbbccc\n"


def test_partials_of_two_streams_interleaved():
    conv = LogConverter()
    out = conv.feed(T1 + b" stdout P out1\n" + T2 + b" stderr F err\n"
                    + T3 + b" stdout F out2\n")
    assert out == T2 + b" stderr err\n" + T1 + b" stdout out1out2\n"


def test_lines_split_across_chunks():
    data = T1 + b" stdout F first\n" + T2 + b" stderr F second\n"
    conv = LogConverter()
    out = b"".join(conv.feed(data[i:i + 7]) for i in range(0, len(data), 7))
    assert out == T1 + b" stdout first\n" + T2 + b" stderr second\n"


def test_finish_flushes_a_last_line_without_newline():
    conv = LogConverter()
    assert conv.feed(T1 + b" stdout P no newline\n") == b""
    assert conv.finish() == T1 + b" stdout no newline\n"
    assert conv.finish() == b""


def test_finish_drops_a_torn_file_line():
    conv = LogConverter()
    assert conv.feed(T1 + b" stdout F hal") == b""
    assert conv.finish() == b""


def test_garbage_lines_are_skipped():
    conv = LogConverter()
    assert conv.feed(b"\n" + b"garbage\n" + T1 + b" stdout F ok\n") == T1 + b" stdout ok\n"


def test_tag_with_more_after_a_colon():
    conv = LogConverter()
    assert conv.feed(T1 + b" stdout P:x a\n" + T2 + b" stdout F:y b\n") == \
        T1 + b" stdout ab\n"


def test_overlong_record_is_cut_so_memory_stays_bounded():
    conv = LogConverter(record_max=10)
    out = conv.feed(b"".join(T1 + b" stdout P 123456\n" for _ in range(4)))
    assert out.count(b"\n") == 2
    assert out.startswith(T1 + b" stdout 123456123456\n")


def test_new_file_forgets_a_torn_line_but_keeps_partials():
    conv = LogConverter()
    conv.feed(T1 + b" stdout P keep\n" + T2 + b" stdout F tor")
    conv.new_file()
    assert conv.feed(T3 + b" stdout F me\n") == T1 + b" stdout keepme\n"


# the file reader


def test_log_file_follows_rotation_by_rename(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_bytes(b"one\n")
    log = LogFile(path)
    assert log.read() == b"one\n"
    assert log.read() == b""
    assert not log.restarted()
    fresh = tmp_path / "ctr.log.tmp"
    fresh.write_bytes(b"two\n")
    os.rename(fresh, path)
    assert log.restarted()
    assert log.read() == b"two\n"
    log.close()


def test_log_file_follows_truncation_in_place(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_bytes(b"a long first line\n")
    log = LogFile(path)
    assert log.read() == b"a long first line\n"
    path.write_bytes(b"short\n")
    assert log.read() == b""
    assert log.restarted()
    assert log.read() == b"short\n"
    log.close()


def test_log_file_appearing_later(tmp_path):
    path = tmp_path / "ctr.log"
    log = LogFile(path)
    assert log.read() == b""
    assert not log.restarted()
    path.write_bytes(b"x\n")
    assert log.restarted()
    assert log.read() == b"x\n"
    log.close()


# streaming into a pipe


def read_until_eof(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


async def read_line(fd: int) -> bytes:
    """One record from the pipe (records are written whole, a line at a time here)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = await asyncio.to_thread(os.read, fd, 1)
        assert chunk, "EOF"
        data += chunk
    return data


async def test_stream_without_follow(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_bytes(T1 + b" stdout F a\n" + T2 + b" stderr P b\n")
    r, w = os.pipe2(os.O_CLOEXEC)
    _, out = await asyncio.gather(stream_log(path, w), asyncio.to_thread(read_until_eof, r))
    assert out == T1 + b" stdout a\n" + T2 + b" stderr b\n"


async def test_stream_of_no_file_is_empty(tmp_path):
    r, w = os.pipe2(os.O_CLOEXEC)
    _, out = await asyncio.gather(stream_log(tmp_path / "ctr.log", w),
                                  asyncio.to_thread(read_until_eof, r))
    assert out == b""


async def test_stream_follows_writes_and_rotation_until_the_end(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_bytes(T1 + b" stdout F first\n")
    r, w = os.pipe2(os.O_CLOEXEC)
    end = asyncio.get_running_loop().create_future()
    streaming = asyncio.ensure_future(stream_log(path, w, end))
    assert await read_line(r) == T1 + b" stdout first\n"
    with open(path, "ab") as f:
        f.write(T2 + b" stdout F second\n")
    assert await read_line(r) == T2 + b" stdout second\n"
    # rotation, as conmon does it: a fresh file renamed over the log
    (tmp_path / "new").write_bytes(T3 + b" stderr F third\n")
    os.rename(tmp_path / "new", path)
    assert await read_line(r) == T3 + b" stderr third\n"
    with open(path, "ab") as f:
        f.write(T1 + b" stdout P unfinished\n")
    end.set_result(None)
    await streaming
    assert await asyncio.to_thread(read_until_eof, r) == T1 + b" stdout unfinished\n"


async def test_stream_stops_when_the_reader_goes_away(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_bytes(T1 + b" stdout F x\n")
    r, w = os.pipe2(os.O_CLOEXEC)
    never = asyncio.get_running_loop().create_future()
    streaming = asyncio.ensure_future(stream_log(path, w, never))
    assert await read_line(r) == T1 + b" stdout x\n"
    os.close(r)
    await asyncio.wait_for(streaming, 5)
    assert never.cancelled()
    with pytest.raises(OSError):
        os.fstat(w)  # closed by the streamer


async def test_stream_to_a_reader_that_never_reads_waits_and_ends_when_it_goes(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_bytes(b"".join(T1 + b" stdout F " + b"x" * 100 + b"\n" for _ in range(50_000)))
    r, w = os.pipe2(os.O_CLOEXEC)
    streaming = asyncio.ensure_future(stream_log(path, w))
    # the pipe fills and the streamer waits, without busy looping or reading ahead
    for _ in range(20):
        await asyncio.sleep(0)
    assert not streaming.done()
    os.close(r)
    await asyncio.wait_for(streaming, 5)
