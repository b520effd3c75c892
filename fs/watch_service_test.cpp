#include "fs/watch_service.h"

#include <doctest/doctest.h>
#include <sys/statfs.h>

#include <cstdlib>
#include <string>

using envd::fs::is_network_filesystem;

TEST_CASE("watch: network filesystems (NFS, CIFS, SMB, SMB2, FUSE) are told apart by statfs f_type") {
  // Refused unless allow_network_mounts (contract §5.7).
  CHECK(is_network_filesystem(0x6969));      // NFS_SUPER_MAGIC
  CHECK(is_network_filesystem(0xFF534D42));  // CIFS_SUPER_MAGIC
  CHECK(is_network_filesystem(0x517B));      // SMB_SUPER_MAGIC
  CHECK(is_network_filesystem(0xFE534D42));  // SMB2_SUPER_MAGIC
  CHECK(is_network_filesystem(0x65735546));  // FUSE_SUPER_MAGIC
  // Local filesystems are watched.
  CHECK_FALSE(is_network_filesystem(0x01021994));  // TMPFS_MAGIC
  CHECK_FALSE(is_network_filesystem(0xEF53));      // EXT4_SUPER_MAGIC (ext2/3 too)
  CHECK_FALSE(is_network_filesystem(0x794C7630));  // OVERLAYFS_SUPER_MAGIC
  CHECK_FALSE(is_network_filesystem(0x9123683E));  // BTRFS_SUPER_MAGIC
  CHECK_FALSE(is_network_filesystem(0x58465342));  // XFS_SUPER_MAGIC
  CHECK_FALSE(is_network_filesystem(0x9FA0));      // PROC_SUPER_MAGIC
  CHECK_FALSE(is_network_filesystem(0));
  // Near misses: the low or high half of a magic alone is not the magic.
  CHECK_FALSE(is_network_filesystem(0x534D42));
  CHECK_FALSE(is_network_filesystem(0x69690000));
  CHECK_FALSE(is_network_filesystem(0x6573));
}

TEST_CASE("watch: this machine's temporary directory is not a network filesystem") {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp && *tmp ? tmp : "/tmp";
  struct statfs sf {};
  REQUIRE(::statfs(dir.c_str(), &sf) == 0);
  INFO("f_type " << std::hex << static_cast<unsigned long>(sf.f_type));
  CHECK_FALSE(is_network_filesystem(static_cast<unsigned long>(sf.f_type)));
}
