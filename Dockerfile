# A sandbox template image with envd installed and started at boot-like entry.
# Build: docker build -t envd-sandbox .   Run: docker run -p 49983:49983 envd-sandbox
# (Not exercised by the test suite: the development machines have no Docker engine.)
FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN bash scripts/setup.sh \
 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DENVD_STATIC=ON -DENVD_TESTS=OFF \
 && cmake --build build --target envd

FROM debian:bookworm-slim
# The user E2B templates create: passwordless, bash, home /home/user.
RUN useradd -m -s /bin/bash user
COPY --from=build /src/build/envd/envd /usr/bin/envd
COPY systemd/envd.service /etc/systemd/system/envd.service
EXPOSE 49983
# In a container there is no systemd and no Firecracker: run envd directly.
ENTRYPOINT ["/usr/bin/envd", "-isnotfc"]
