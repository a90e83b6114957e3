<div class="scan">
  <input name="{{field}}" id="{{field}}" value="{{value}}" data-scan autocomplete="off" autocapitalize="off" autofocus required maxlength="500" placeholder="{{placeholder}}">
  <button type="button" class="camera" data-camera="{{field}}">📷 扫码 Scan</button>
  <video class="viewfinder" hidden playsinline muted></video>
</div>
