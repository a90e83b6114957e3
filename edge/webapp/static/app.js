// Scanning in the page: the phone's camera decoded by jsQR, or a Bluetooth/USB scanner typing into
// the focused field (it ends with Enter, which submits the form). Decoded text is only ever put
// into an input's value, never into the page's HTML.
"use strict";

function stopCamera(video) {
  if (video.srcObject) {
    video.srcObject.getTracks().forEach((track) => track.stop());
    video.srcObject = null;
  }
  video.hidden = true;
}

async function startCamera(button) {
  const box = button.closest(".scan");
  const input = box.querySelector("input");
  const video = box.querySelector("video");
  if (video.srcObject) { stopCamera(video); return; }
  if (!navigator.mediaDevices || typeof jsQR !== "function") {
    input.placeholder = "此浏览器不能用摄像头扫码 / no camera here: use a scanner or type";
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (err) {
    input.placeholder = "摄像头不可用 / camera unavailable: " + err.name;
    return;
  }
  video.hidden = false;
  await video.play();
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const tick = () => {
    if (!video.srcObject) return;
    if (video.readyState >= 2 && video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0);
      const frame = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "attemptBoth" });
      if (found && found.data) {
        input.value = found.data;
        stopCamera(video);
        input.dispatchEvent(new Event("change"));
        if (input.form && input.form.reportValidity()) input.form.requestSubmit();
        return;
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

function showPreviews(input) {
  const box = document.getElementById("previews");
  box.replaceChildren();
  Array.from(input.files).slice(0, 4).forEach((file) => {
    const img = document.createElement("img");
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
    box.appendChild(img);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-camera]").forEach((button) => {
    button.addEventListener("click", () => startCamera(button));
  });
  const photos = document.getElementById("photos");
  if (photos) photos.addEventListener("change", () => showPreviews(photos));
  const binding = document.getElementById("binding");
  if (binding) {
    binding.addEventListener("submit", (event) => {
      if (photos.files.length > 4) {
        event.preventDefault();
        photos.setCustomValidity("最多 4 张 / at most 4 photos");
        photos.reportValidity();
      }
    });
  }
});
