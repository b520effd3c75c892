#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>

#include "envd/log.h"

// Logs stay quiet unless ENVD_TEST_LOG names a level (e.g. ENVD_TEST_LOG=debug).
int main(int argc, char** argv) {
  envd::log::Level level = envd::log::Level::off;
  if (const char* l = std::getenv("ENVD_TEST_LOG")) envd::log::parse_level(l, level);
  envd::log::init(level);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
