# A sandbox template image with envd, giving the SDKs what E2B's templates give them.
# Build: docker build -t envd-sandbox .   Run: docker run -p 49983:49983 envd-sandbox
# No Docker engine on the development machines: tests/ops/check_image.sh (ctest ops.image) runs
# the runtime stage's RUN steps in a debootstrap chroot of bookworm and checks the result.
FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN bash scripts/setup.sh --build \
 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DENVD_STATIC=ON -DENVD_TESTS=OFF \
 && cmake --build build --target envd

FROM debian:bookworm-slim AS runtime
# What the SDKs expect of an E2B template: bash and coreutils (in the base), sudo, git, curl,
# python3 with `python`; socat, as E2B templates ship it (envd forwards ports itself: forward/);
# tini as PID 1, which reaps the orphans envd's processes leave behind and passes SIGTERM on to envd.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bash coreutils sudo git curl ca-certificates python3 python-is-python3 socat tini \
 && rm -rf /var/lib/apt/lists/*
# The user E2B templates create: bash, home /home/user, passwordless sudo.
RUN useradd -m -s /bin/bash user \
 && printf 'user ALL=(ALL:ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/user \
 && chmod 0440 /etc/sudoers.d/user \
 && visudo -c -q -f /etc/sudoers.d/user
COPY --from=build /src/build/envd/envd /usr/bin/envd
COPY systemd/envd.service /etc/systemd/system/envd.service
EXPOSE 49983
# In a container there is no systemd and no Firecracker: tini runs envd directly.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/envd", "-isnotfc"]
