#include "fs/etag.h"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace envd::fs;

namespace {
struct stat make_stat(ino_t ino, off_t size, long mtime_ns, long ctime_ns) {
  struct stat st {};
  st.st_ino = ino;
  st.st_size = size;
  st.st_mtim.tv_sec = mtime_ns / 1'000'000'000;
  st.st_mtim.tv_nsec = mtime_ns % 1'000'000'000;
  st.st_ctim.tv_sec = ctime_ns / 1'000'000'000;
  st.st_ctim.tv_nsec = ctime_ns % 1'000'000'000;
  return st;
}
}  // namespace

TEST_CASE("strong etag: every field changes it, generation appended only when set") {
  auto base = strong_etag(make_stat(0x10, 5, 1'000'000'001, 2'000'000'002), 0);
  CHECK(base == "\"10-5-3b9aca01-77359402\"");
  CHECK(strong_etag(make_stat(0x11, 5, 1'000'000'001, 2'000'000'002), 0) != base);
  CHECK(strong_etag(make_stat(0x10, 6, 1'000'000'001, 2'000'000'002), 0) != base);
  CHECK(strong_etag(make_stat(0x10, 5, 1'000'000'002, 2'000'000'002), 0) != base);
  CHECK(strong_etag(make_stat(0x10, 5, 1'000'000'001, 2'000'000'003), 0) != base);
  CHECK(strong_etag(make_stat(0x10, 5, 1'000'000'001, 2'000'000'002), 7) == "\"10-5-3b9aca01-77359402-7\"");
}

TEST_CASE("weak gzip etag") {
  CHECK(weak_gzip_etag("\"a-b\"") == "W/\"a-b-gz\"");
  CHECK(weak_gzip_etag("W/\"a\"") == "W/\"a-gz\"");
}

TEST_CASE("generations: bump is per inode, increasing, bounded with the oldest forgotten") {
  EtagGenerations g(3);
  CHECK(g.get(1, 1) == 0);
  g.bump(1, 1);
  auto a = g.get(1, 1);
  CHECK(a != 0);
  g.bump(1, 1);
  CHECK(g.get(1, 1) > a);
  CHECK(g.get(2, 1) == 0);  // another device
  g.bump(1, 2);
  g.bump(1, 3);
  CHECK(g.size() == 3);
  g.bump(1, 1);  // refreshes (1,1): now (1,2) is the oldest
  g.bump(1, 4);
  CHECK(g.size() == 3);
  CHECK(g.get(1, 2) == 0);
  CHECK(g.get(1, 1) != 0);
  CHECK(g.get(1, 3) != 0);
  CHECK(g.get(1, 4) != 0);
}

TEST_CASE("generations: a lower capacity forgets the oldest") {
  EtagGenerations g(8);
  for (ino_t i = 1; i <= 8; ++i) g.bump(1, i);
  g.set_capacity(2);
  CHECK(g.size() == 2);
  CHECK(g.get(1, 6) == 0);
  CHECK(g.get(1, 7) != 0);
  CHECK(g.get(1, 8) != 0);
}

TEST_CASE("generations: concurrent bumps never lose the bound") {
  EtagGenerations g(64);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&g, t] {
      for (int i = 0; i < 2000; ++i) g.bump(1, static_cast<ino_t>(t * 10000 + i));
    });
  }
  for (auto& th : threads) th.join();
  CHECK(g.size() == 64);
}

TEST_CASE("scan_etag") {
  std::string_view tag;
  CHECK(scan_etag("  \"abc\" , x", tag) == 7);
  CHECK(tag == "\"abc\"");
  CHECK(scan_etag("W/\"abc\"", tag) == 7);
  CHECK(tag == "W/\"abc\"");
  CHECK(scan_etag("abc", tag) == 0);
  CHECK(scan_etag("\"abc", tag) == 0);
  CHECK(scan_etag("\"a c\"", tag) == 0);  // space is not an etagc
}

TEST_CASE("If-Match uses strong comparison, If-None-Match weak") {
  const std::string cur = "\"v1\"";
  CHECK(eval_if_match("", cur) == Cond::none);
  CHECK(eval_if_match("\"v1\"", cur) == Cond::match);
  CHECK(eval_if_match("\"v0\", \"v1\"", cur) == Cond::match);
  CHECK(eval_if_match("W/\"v1\"", cur) == Cond::no_match);
  CHECK(eval_if_match("*", cur) == Cond::match);
  CHECK(eval_if_match("*", "") == Cond::no_match);
  CHECK(eval_if_match("garbage", cur) == Cond::no_match);

  CHECK(eval_if_none_match(" ", cur) == Cond::none);
  CHECK(eval_if_none_match("W/\"v1\"", cur) == Cond::match);
  CHECK(eval_if_none_match("\"x\",,\"v1\"", cur) == Cond::match);
  CHECK(eval_if_none_match("\"x\"", cur) == Cond::no_match);
  CHECK(eval_if_none_match("*", cur) == Cond::match);
  CHECK(eval_if_none_match("*", "") == Cond::no_match);
  // A gzip response's weak tag matches the file's strong one only by its own opaque part.
  CHECK(eval_if_none_match(weak_gzip_etag(cur), cur) == Cond::no_match);
}
